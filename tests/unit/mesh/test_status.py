"""lanai.mesh.status: the one table from domain errors to gRPC status codes."""

from __future__ import annotations

import grpc
import pytest

from lanai.mesh.status import MAX_MESSAGE_CHARS, STATUS, status_for
from lanai.services.core import errors
from lanai.services.core.errors import (DeadlineExceeded, InvalidInput, LanaiError, ModelNotFound, ModelNotPrepared,
                                   Overloaded, PermissionDenied, Unauthenticated, Unavailable)

EXPECTED = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    ModelNotPrepared: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


@pytest.mark.parametrize(("kind", "code"), EXPECTED.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_domain_error_has_its_code_and_keeps_its_message(kind: type[LanaiError], code: grpc.StatusCode) -> None:
    message = f"{kind.__name__}: what went wrong and what to do"
    assert status_for(kind(message)) == (code, message)


@pytest.mark.parametrize(("kind", "code"), EXPECTED.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_subclasses_inherit_the_code(kind: type[LanaiError], code: grpc.StatusCode) -> None:
    sub = type(f"Special{kind.__name__}", (kind,), {})
    assert status_for(sub("detail")) == (code, "detail")


def test_every_domain_error_is_mapped() -> None:
    defined = {v for v in vars(errors).values()
               if isinstance(v, type) and issubclass(v, LanaiError) and v is not LanaiError}
    assert defined == set(EXPECTED) == set(STATUS)


@pytest.mark.parametrize("error", [
    RuntimeError("CUDA out of memory at /home/alice/secret/model.bin"),
    KeyError("password=hunter2"),
    ValueError("/home/alice/secret"),
    ZeroDivisionError("division by zero"),
])
def test_unknown_errors_are_internal_and_hide_their_details(error: Exception) -> None:
    code, message = status_for(error)
    assert code is grpc.StatusCode.INTERNAL
    assert message and "secret" not in message and "hunter2" not in message and str(error) not in message
    assert status_for(RuntimeError("another text")) == (code, message)  # one generic message


def test_an_error_that_is_also_a_builtin_keeps_its_domain_code() -> None:
    class BadAudio(ValueError, InvalidInput):
        pass

    assert status_for(BadAudio("the audio is empty")) == (grpc.StatusCode.INVALID_ARGUMENT, "the audio is empty")


def test_long_messages_are_cut_to_fit_a_header() -> None:
    code, message = status_for(Unavailable("no node could take it; " + "UNAVAILABLE: details " * 500))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert len(message) <= MAX_MESSAGE_CHARS + 3 and message.startswith("no node could take it") and message.endswith("...")


def test_client_values_are_quoted_short() -> None:
    assert errors.quote("tiny.en") == "'tiny.en'"
    quoted = errors.quote("x" * 1_000_000)
    assert quoted == f"'{'x' * errors.QUOTE_CHARS}'... (1000000 characters)"
    assert errors.quote("a\nb") == "'a\\nb'"  # repr: a control character cannot break the message


def test_a_request_that_does_not_parse_is_invalid_input_naming_its_type() -> None:
    from lanai.api.speech.v1 import speech_pb2
    from lanai.mesh import handlers

    handler = grpc.unary_unary_rpc_method_handler(lambda r, c: r,
                                                  request_deserializer=speech_pb2.TranscribeRequest.FromString)
    decode = handlers.decoder(handler)
    assert decode(b"") == speech_pb2.TranscribeRequest()
    with pytest.raises(InvalidInput, match="not a valid lanai.speech.v1.TranscribeRequest message"):
        decode(b"\xff\xff\xff")
    assert handlers.decoder(grpc.unary_unary_rpc_method_handler(lambda r, c: r))(b"\xff") == b"\xff"  # raw handler

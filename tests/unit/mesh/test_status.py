"""lanai.mesh.status: the one table from domain errors to gRPC status codes."""

from __future__ import annotations

import grpc
import pytest

from lanai.mesh.status import STATUS, status_for
from lanai.services import errors
from lanai.services.errors import (DeadlineExceeded, InvalidInput, LanaiError, ModelNotFound, ModelNotPrepared,
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

"""lanai.services.language.convert: request validation and responses."""

from __future__ import annotations

import pytest

from lanai.api.language.v1 import language_pb2
from lanai.services.core.errors import InvalidInput
from lanai.services.language import convert
from lanai.services.language.types import Message, Sampling


def sampling(**fields: object) -> Sampling:
    return convert.sampling(language_pb2.SamplingOptions(**fields), 256, 1024)  # type: ignore[arg-type]


def test_defaults_follow_the_proto() -> None:
    assert sampling() == Sampling(max_tokens=256, temperature=0.7, top_p=1.0, top_k=0, repetition_penalty=1.0,
                                  seed=None, stop=())


def test_explicit_values_are_kept_including_zero_temperature_and_seed_zero() -> None:
    s = sampling(max_tokens=9, temperature=0.0, top_p=0.5, top_k=40, repetition_penalty=1.2, seed=0, stop=["\n"])
    assert s == Sampling(9, 0.0, 0.5, 40, pytest.approx(1.2), 0, ("\n",))  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "message"), [
    ({"max_tokens": 1025}, "over this node's limit of 1024"),
    ({"temperature": 2.5}, "temperature 2.5 is out of range; use 0 to 2"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p 1.5 is out of range"),
    ({"top_p": 0.0}, "top_p 0 keeps no tokens"),
    ({"repetition_penalty": 3.0}, "use 0.5 to 2"),
    ({"stop": ["a"] * 9}, "at most 8"),
    ({"stop": [""]}, "1 to 256 characters"),
])
def test_bad_sampling_options_say_the_limit(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        sampling(**fields)


def test_prompt_and_chat_inputs() -> None:
    assert convert.prompt(language_pb2.GenerateRequest(prompt="Once upon")) == "Once upon"
    chat = language_pb2.Chat(messages=[language_pb2.ChatMessage(role="system", content="Be brief."),
                                       language_pb2.ChatMessage(role="user", content="Hi")])
    assert convert.prompt(language_pb2.GenerateRequest(chat=chat)) == [Message("system", "Be brief."),
                                                                        Message("user", "Hi")]


@pytest.mark.parametrize(("request_", "message"), [
    (language_pb2.GenerateRequest(), "no input"),
    (language_pb2.GenerateRequest(prompt="  "), "prompt is empty"),
    (language_pb2.GenerateRequest(chat=language_pb2.Chat()), "no messages"),
    (language_pb2.GenerateRequest(chat=language_pb2.Chat(messages=[language_pb2.ChatMessage(role="robot",
                                                                                            content="x")])),
     "role 'robot'; use one of: system, user, assistant"),
    (language_pb2.GenerateRequest(chat=language_pb2.Chat(messages=[language_pb2.ChatMessage(role="user")])),
     "every chat message is empty"),
])
def test_bad_inputs_say_what_to_send(request_: language_pb2.GenerateRequest, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        convert.prompt(request_)

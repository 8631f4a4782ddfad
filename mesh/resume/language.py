"""A GenerateStream that outlives its node: the router keeps the text it relayed, and a new node
continues the answer from it (GenerateRequest.continuation), with the same sampling and stop
options; max_tokens counts the whole answer and the final usage covers it.

Greedy decoding continues as one run would (the continuation is tokenized again, so a token
boundary inside the relayed text may differ in rare cases). With temperature above 0 the
sampler's state is not carried over: a seeded answer is no longer the one that seed gives in a
single run, but it is a plausible continuation of the same text."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from lanai.api.language.v1 import language_pb2


class GenerationResume:
    def __init__(self, request: language_pb2.GenerateRequest, raw: bytes) -> None:
        self._request, self._raw = request, raw
        self._text: list[str] = []
        self._moved = False

    @classmethod
    def start(cls, first: bytes) -> GenerationResume | None:
        try:
            return cls(language_pb2.GenerateRequest.FromString(first), first)
        except DecodeError:
            return None

    def request(self) -> bytes:
        if not self._moved:
            return self._raw
        resumed = language_pb2.GenerateRequest()
        resumed.CopyFrom(self._request)
        resumed.continuation = self._request.continuation + "".join(self._text)
        return resumed.SerializeToString()

    def moved(self) -> None:
        self._moved = True

    def relay(self, raw: bytes) -> bytes | None:
        response = language_pb2.GenerateStreamResponse.FromString(raw)
        self._text.append(response.delta)
        return raw

    def close(self) -> None:
        pass

"""Every lanai method, found from the descriptors, gets hostile input (undecodable bytes, invalid
UTF-8, 1 MB strings, extreme numbers, truncated messages, streams out of order) on a real node
serving speech, vision and language: directly, and through a router over the mesh port. No call
may end UNKNOWN or INTERNAL or run into its deadline, and both processes serve afterwards.

The client is grpc's sync one: the asyncio client can report INTERNAL for a stream the server
ended early (grpc/grpc#36066), which would hide what the node really answered."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

from . import hostile
from .conftest import has_keywords
from .processes import LanaiProcess, start
from .test_trust import secure_home

pytestmark = pytest.mark.asyncio(loop_scope="session")
BUGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
"""DEADLINE_EXCEEDED: the call hung until the test's deadline; a bad input must be answered at once."""
DEADLINE_S = 60.0
UP = ["up", "--host", "127.0.0.1", "--port", "0", "--mesh-port", "0", "--metrics-port", "-1", "--discovery", "none",
      "--services", "speech,vision,language", "--speech-models", "tiny.en", "--grace", "1"]
CHANNEL = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def doors(lanai_home: Path, vision_home: Path, language_home: Path,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, LanaiProcess]]:
    """"routed": a secure `lanai up` whose router places every call on itself over mutual TLS;
    "direct": the same with --no-router, serving each call itself."""
    tmp = tmp_path_factory.mktemp("hostile")
    routed, direct = await asyncio.gather(
        start(*UP, "--node-id", "hostile-routed", home=secure_home(tmp, "routed", lanai_home)),
        start(*UP, "--node-id", "hostile-direct", "--no-router", home=secure_home(tmp, "direct", lanai_home)))
    try:
        yield {"routed": routed, "direct": direct}
    finally:
        for process in (routed, direct):
            await process.kill()


def call(address: str, method: hostile.Method, messages: list[bytes]) -> grpc.StatusCode:
    """The status one raw call ends with (streams of responses: read three, then hang up)."""
    with grpc.insecure_channel(address, options=CHANNEL) as channel:
        try:
            if method.client_streaming and method.server_streaming:
                responses = channel.stream_stream(method.path)(iter(messages), timeout=DEADLINE_S)
            elif method.server_streaming:
                responses = channel.unary_stream(method.path)(messages[0], timeout=DEADLINE_S)
            elif method.client_streaming:
                channel.stream_unary(method.path)(iter(messages), timeout=DEADLINE_S)
                return grpc.StatusCode.OK
            else:
                channel.unary_unary(method.path)(messages[0], timeout=DEADLINE_S)
                return grpc.StatusCode.OK
            for _ in itertools.islice(responses, 3):
                pass
            responses.cancel()
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            if error.code() in BUGS:
                return _Bug(error.code(), error.details() or "")  # type: ignore[return-value]
            return error.code()  # type: ignore[no-any-return]


class _Bug(str):
    def __new__(cls, code: grpc.StatusCode, details: str) -> _Bug:
        return super().__new__(cls, f"{code.name}: {details[:200]}")


def sweep(address: str) -> tuple[Counter[str], list[str]]:
    """Every case of every method, four at a time: (codes seen, the calls that ended as bugs)."""
    work = [(m, name, messages) for m in hostile.methods() for name, messages in hostile.cases(m)]
    codes: Counter[str] = Counter()
    bugs: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda w: call(address, w[0], w[2]), work)
        for (method, name, _), result in zip(work, results):
            if isinstance(result, _Bug):
                bugs.append(f"{method.path} [{name}] -> {result}")
                codes[str(result).split(":")[0]] += 1
            else:
                codes[result.name] += 1
    return codes, bugs


@pytest.mark.parametrize("door", ["direct", "routed"])
async def test_no_hostile_input_gets_unknown_internal_or_a_hang(doors: dict[str, LanaiProcess], door: str,
                                                                fox_wav: bytes) -> None:
    process = doors[door]
    codes, bugs = await asyncio.to_thread(sweep, process.address)
    print(f"{door}: {sum(codes.values())} calls: {dict(codes)}")
    assert not bugs, "\n".join(bugs)
    assert codes["INVALID_ARGUMENT"] > 50  # the sweep reached the validators, not just a closed door
    assert process.proc.returncode is None
    async with grpc.aio.insecure_channel(process.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reply = await speech_pb2_grpc.SpeechStub(channel).Transcribe(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=fox_wav)), timeout=60)
        assert has_keywords(reply.text)

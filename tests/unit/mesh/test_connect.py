"""The CLI's connections carry the API key as `authorization` metadata (an interceptor, not a
call-credentials plugin), on every kind of call, and in the clear only to this machine."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lanai.mesh.cli import connect


class Recorder(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.seen.append(dict(details.invocation_metadata).get("authorization"))
        return continuation(details)


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    from concurrent import futures
    recorder = Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[recorder])
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", recorder
    srv.stop(None)


def args(to: str, key: str = "k-123", **extra: Any) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    connect.add_flags(p)
    ns = p.parse_args(["--to", to, "--key", key, "--plaintext"])
    for name, value in extra.items():
        setattr(ns, name, value)
    return ns


def test_sync_channel_sends_the_key_on_unary_and_streaming_calls(server: tuple[str, Recorder]) -> None:
    address, recorder = server
    with connect.channel(args(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    assert recorder.seen == ["Bearer k-123", "Bearer k-123"]


async def test_aio_channel_sends_the_key_on_unary_and_streaming_calls(server: tuple[str, Recorder]) -> None:
    address, recorder = server
    async with connect.aio_channel(args(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        async for update in watch:
            assert update.status == health_pb2.HealthCheckResponse.SERVING
            break
        watch.cancel()
    assert recorder.seen == ["Bearer k-123", "Bearer k-123"]


def test_no_key_no_header(server: tuple[str, Recorder]) -> None:
    address, recorder = server
    with connect.channel(args(address, key="")) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert recorder.seen == [None]


def test_the_key_goes_in_the_clear_only_to_this_machine() -> None:
    tls = grpc.ssl_channel_credentials()
    assert connect._sends_key(args("localhost:50051"), None)
    assert connect._sends_key(args("127.0.0.3:50051"), None)
    assert connect._sends_key(args("[::1]:50051"), None)
    assert not connect._sends_key(args("192.168.1.20:50051"), None)
    assert not connect._sends_key(args("office-box.local:50051"), None)
    assert connect._sends_key(args("192.168.1.20:50051"), tls)
    assert not connect._sends_key(args("192.168.1.20:50051", cert="c.pem"), tls)  # the certificate is the credential

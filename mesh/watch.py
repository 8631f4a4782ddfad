"""A router's connection to one node: Describe, then follow WatchLoad; on a break, report the
node lost and reconnect with backoff, so a node that comes back is re-admitted by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.security.trust import Untrusted
from lanai.mesh.state import LoadView, ServiceView

log = logging.getLogger(__name__)
MISSED_HEARTBEATS = 3
"""A node silent for this many heartbeats is taken as lost (a power cut sends no TCP reset)."""


def services_of(describe: mesh_pb2.DescribeResponse) -> dict[str, ServiceView]:
    return {s.name: ServiceView(s.slots, s.max_queue, tuple(m.name for m in s.models),
                                next((m.name for m in s.models if m.is_default), s.models[0].name if s.models else ""))
            for s in describe.services}


def throughput_of(describe: mesh_pb2.DescribeResponse) -> dict[tuple[str, str], float]:
    return {(s.name, m.name): m.throughput.value for s in describe.services for m in s.models}


def load_of(report: mesh_pb2.LoadReport) -> tuple[dict[str, LoadView], dict[tuple[str, str], float]]:
    load = {s.service: LoadView(s.in_flight, s.queued, s.open_streams) for s in report.services}
    throughput = {(s.service, m.model): m.throughput.value for s in report.services for m in s.models}
    return load, throughput


class NodeWatcher:
    """Runs until cancelled. Callbacks run on the event loop and must not block."""

    def __init__(self, address: str, connect: Callable[[], Awaitable[grpc.aio.Channel]], *, heartbeat_ms: int,
                 on_described: Callable[[str, mesh_pb2.DescribeResponse], None],
                 on_load: Callable[[str, mesh_pb2.LoadReport], None],
                 on_lost: Callable[[str, str], None],
                 on_untrusted: Callable[[str, Untrusted], None] | None = None,
                 backoff_s: tuple[float, float] = (0.2, 2.0)) -> None:
        self.address = address
        self._connect = connect
        """Returns the channel to the node, once it proved who it is (Untrusted when it cannot)."""
        self._heartbeat_ms = heartbeat_ms
        self._on_described, self._on_load, self._on_lost = on_described, on_load, on_lost
        self._on_untrusted = on_untrusted
        self._backoff = backoff_s

    async def run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                channel = await self._connect()
            except Untrusted as exc:
                if self._on_untrusted is not None:
                    self._on_untrusted(self.address, exc)
                await asyncio.sleep(self._backoff[1])  # it may join the mesh later: look again now and then
                continue
            except OSError as exc:
                reason, reached = f"unreachable: {exc}", False
            else:
                reason, reached = await self._follow(mesh_pb2_grpc.NodeStub(channel))
            self._on_lost(self.address, reason)
            if reached:
                delay = self._backoff[0]  # it was up until now: try again soon
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _follow(self, stub: mesh_pb2_grpc.NodeAsyncStub) -> tuple[str, bool]:
        """Follow the node until its load stream breaks: why it broke, and whether it was reached."""
        patience = MISSED_HEARTBEATS * self._heartbeat_ms / 1000
        call = None
        reached = False
        try:
            # wait_for_ready: a node starting up is described as soon as it listens, not after a backoff
            described = await stub.Describe(mesh_pb2.DescribeRequest(), timeout=5, wait_for_ready=True)
            self._on_described(self.address, described)
            reached = True
            call = stub.WatchLoad(mesh_pb2.WatchLoadRequest(heartbeat_ms=self._heartbeat_ms))
            reports = aiter(call)
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # coincides with the stream ending, and the watcher then never stops (shutdown hangs)
                async with asyncio.timeout(patience):
                    report = await anext(reports)
                self._on_load(self.address, report)
        except StopAsyncIteration:
            return "load stream ended: the node is shutting down", reached
        except TimeoutError:
            return f"no load report for {patience:.1f} s", reached
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNAUTHENTICATED:  # a client port: routers dial mesh ports
                return (f"{error.code().name}: {error.details()} (is {self.address} a node's client port? routers "
                        "dial the mesh port, --mesh-port)"), reached
            return f"unreachable: {error.code().name}: {error.details()}", reached
        finally:
            if call is not None:
                call.cancel()

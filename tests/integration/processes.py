"""Real `lanai` processes for tests: start one, wait for its ready line, stop or kill it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc

LANAI = [sys.executable, "-m", "lanai.mesh.cli"]


class LanaiProcess:
    def __init__(self, proc: asyncio.subprocess.Process, address: str, node_id: str, mesh_port: int = 0,
                 metrics_port: int = 0, http_port: int = 0, wyoming_port: int = 0) -> None:
        self.proc, self.address, self.node_id = proc, address, node_id
        self.mesh_port, self.metrics_port = mesh_port, metrics_port
        self.http_port, self.wyoming_port = http_port, wyoming_port

    @property
    def mesh_address(self) -> str:
        return f"{self.address.rsplit(':', 1)[0]}:{self.mesh_port}"

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        return await asyncio.wait_for(self.proc.wait(), 60)


async def start(*args: str, home: Path, env: dict[str, str | None] | None = None) -> LanaiProcess:
    """Run `lanai ARGS` and wait for its ready line (stdout); stderr goes to the test's output.
    `env` changes the environment it inherits (None removes a variable)."""
    merged = {**os.environ, "LANAI_HOME": str(home), **(env or {})}
    proc = await asyncio.create_subprocess_exec(*LANAI, *args,
                                                env={k: v for k, v in merged.items() if v is not None},
                                                stdout=asyncio.subprocess.PIPE, stderr=None)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
    except TimeoutError:
        proc.kill()
        raise
    match = re.search(r"lanai: \w+ (\S+) ready on (\S+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"lanai {' '.join(args)} did not start: {line!r}")
    ports = dict(re.findall(r"(\w+_port)=(\d+)", line))
    return LanaiProcess(proc, match.group(2), match.group(1), *(int(ports.get(f"{name}_port", 0))
                                                                for name in ("mesh", "metrics", "http", "wyoming")))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def wait_for_nodes(router: str, predicate, timeout: float = 30.0,  # type: ignore[no-untyped-def]
                         include_down: bool = False) -> mesh_pb2.ListNodesResponse:
    """Poll the router's ListNodes until `predicate(nodes)` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with grpc.aio.insecure_channel(router) as channel:
        stub = mesh_pb2_grpc.MeshStub(channel)
        while True:
            reply = await stub.ListNodes(mesh_pb2.ListNodesRequest(include_down=include_down), timeout=5)
            if predicate(reply.nodes):
                return reply
            if loop.time() > deadline:
                raise AssertionError(f"router {router} never saw the expected nodes: "
                                     f"{[(n.node_id, mesh_pb2.NodeState.Name(n.state)) for n in reply.nodes]}")
            await asyncio.sleep(0.1)


def up(nodes, *ids: str) -> bool:  # type: ignore[no-untyped-def]
    states = {n.node_id: n.state for n in nodes}
    return all(states.get(i) == mesh_pb2.NODE_STATE_UP for i in ids)

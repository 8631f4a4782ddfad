"""`--discovery ray`: the lanai actors of a Ray namespace, followed as they come, go and restart.
Like the other backends it only says where nodes are; the router checks each one itself (health,
membership, premises), so a Ray node is placed exactly like an mDNS one.

Ray's API blocks, so every call runs on one thread of its own; the router's loop only diffs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from lanai.mesh.discovery import Found, Gone
from lanai.mesh.raycluster.cluster import lanai_actors
from lanai.mesh.raycluster.connection import NAMESPACE, connect

log = logging.getLogger(__name__)
ANSWER_S = 1.0
"""How long one poll waits for the actors' info(); one still starting or restarting keeps the
address it had (the router's own heartbeat decides whether that address is up)."""


class RayDiscovery:
    def __init__(self, address: str = "auto", namespace: str = NAMESPACE, *, interval_s: float = 2.0) -> None:
        self._address, self._namespace, self._interval = address, namespace, interval_s
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lanai-ray")
        self._task: asyncio.Task[None] | None = None
        self._asked: dict[str, Any] = {}  # actor name -> its pending info() call
        self._infos: dict[str, dict[str, Any]] = {}  # actor name -> its last answer
        self._known: dict[str, tuple[str, str, str]] = {}  # actor name -> (address, node id, mesh) told

    async def start(self, found: Found, gone: Gone) -> None:
        self._task = asyncio.create_task(self._follow(found, gone), name="ray discovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _follow(self, found: Found, gone: Gone) -> None:
        loop = asyncio.get_running_loop()
        complained = ""
        while True:
            try:
                current = await loop.run_in_executor(self._executor, self.poll)
            except Exception as exc:  # noqa: BLE001 - whatever Ray raises, discovery must go on following
                if str(exc) != complained:  # once per distinct problem, not every poll
                    log.warning("ray discovery: %s; keeping the %d node(s) already known, retrying every %.0f s",
                                exc, len(self._known), self._interval)
                    complained = str(exc)
                await loop.run_in_executor(self._executor, self._disconnect)
            else:
                complained = ""
                for name, seen in sorted(current.items()):
                    if self._known.get(name) != seen:
                        if name in self._known:  # restarted elsewhere or on another port
                            gone(self._known[name][0])
                        found(seen[0], "ray", seen[1], seen[2])
                        self._known[name] = seen
                for name in sorted(set(self._known) - set(current)):
                    gone(self._known.pop(name)[0])
            await asyncio.sleep(self._interval)

    def poll(self) -> dict[str, tuple[str, str, str]]:
        """On the Ray thread: actor name -> (member address, node id, mesh) of every lanai actor
        that has answered (now or on an earlier poll) and is still listed."""
        from ray.exceptions import RayActorError

        ray = connect(self._address, self._namespace)
        names = set(lanai_actors(ray))
        for name in names - set(self._asked):
            try:
                self._asked[name] = ray.get_actor(name).info.remote()
            except ValueError:  # gone between the listing and now
                continue
        for name in set(self._asked) - names:
            del self._asked[name]
        refs = list(self._asked.values())
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=ANSWER_S) if refs else ([], [])
        for name, ref in list(self._asked.items()):
            if ref in ready:
                del self._asked[name]  # asked again next poll: a restart shows as a new address
                try:
                    self._infos[name] = ray.get(ref)
                except RayActorError:  # died while answering; restarting or gone
                    self._infos.pop(name, None)
        for name in set(self._infos) - names:
            del self._infos[name]
        return {name: (info["member_address"], info["node_id"], info["mesh"]) for name, info in self._infos.items()}

    def _disconnect(self) -> None:
        import ray

        self._asked.clear()
        if ray.is_initialized():
            ray.shutdown()

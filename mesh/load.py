"""Live load of a node: admission controllers and measured throughput, watched by routers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lanai.mesh import metrics
from lanai.services.core.admission import AdmissionController, Load

COALESCE_S = 0.01
"""Changes closer together than this go out as one report."""


@dataclass(frozen=True)
class Throughput:
    """Exponentially weighted average of a model's measured speed."""

    unit: str
    value: float = 0.0
    samples: int = 0

    def observe(self, value: float, alpha: float = 0.2) -> Throughput:
        blended = value if self.samples == 0 else (1 - alpha) * self.value + alpha * value
        return Throughput(self.unit, blended, self.samples + 1)


@dataclass(frozen=True)
class Snapshot:
    """One load report."""

    sequence: int
    unix_ms: int
    services: dict[str, Load]
    throughput: dict[str, dict[str, Throughput]]
    """service -> model -> measured throughput."""
    draining: bool


class LoadBoard:
    """Collects the load of a node's services and wakes watchers when it changes.
    Every method runs on the event loop."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.draining = False
        self._controllers: dict[str, AdmissionController] = {}
        self._throughput: dict[str, dict[str, Throughput]] = {}
        self._version = 0
        self._sequence = 0
        self._changed: asyncio.Future[None] | None = None

    def add(self, controller: AdmissionController, models: dict[str, str]) -> None:
        """Track a service's controller; `models` maps each model to its throughput unit."""
        self._controllers[controller.service] = controller
        self._throughput[controller.service] = {m: Throughput(unit) for m, unit in models.items()}
        metrics.SLOTS.labels(controller.service, self.node_id).set(controller.slots)
        self.changed()

    def observe(self, service: str, model: str, value: float) -> None:
        """Fold one measured throughput (e.g. audio seconds per compute second) into the average."""
        current = self._throughput[service][model]
        self._throughput[service][model] = current.observe(value)
        self.changed()

    def throughput(self, service: str, model: str) -> Throughput:
        return self._throughput[service][model]

    def drain(self) -> None:
        self.draining = True
        for controller in self._controllers.values():
            controller.drain()
        self.changed()

    def changed(self) -> None:
        self._version += 1
        for name, controller in self._controllers.items():
            load = controller.load()
            metrics.IN_FLIGHT.labels(name, self.node_id).set(load.in_flight)
            metrics.QUEUED.labels(name, self.node_id).set(load.queued)
            metrics.OPEN_STREAMS.labels(name, self.node_id).set(load.open_streams)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    def snapshot(self) -> Snapshot:
        self._sequence += 1
        return Snapshot(self._sequence, int(time.time() * 1000),
                        {name: c.load() for name, c in self._controllers.items()},
                        {s: dict(m) for s, m in self._throughput.items()}, self.draining)

    async def watch(self, heartbeat_s: float) -> AsyncIterator[Snapshot]:
        """A snapshot now, then one after every change (coalesced) or heartbeat. Ends after
        the first draining snapshot, so watchers learn of a shutdown and do not hold it up."""
        seen = -1
        while True:
            if seen != self._version:
                seen = self._version
                yield self.snapshot()
                if self.draining:
                    return
                await asyncio.sleep(COALESCE_S)
                continue
            if self._changed is None or self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(heartbeat_s):  # not wait_for: it can swallow a cancellation
                    await asyncio.shield(self._changed)
            except TimeoutError:
                yield self.snapshot()  # heartbeat: nothing changed

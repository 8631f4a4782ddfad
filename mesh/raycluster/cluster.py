"""`lanai ray up|ls|down` against a connected Ray cluster: lanai nodes as named, detached,
restartable actors, one per service replica, placed by Ray's scheduler from their resource
requests. Names are `lanai-<service>-<i>` in the `lanai` namespace; routers follow them with
`--discovery ray` (discovery.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanai.mesh.raycluster.actor import NodeActor, machine_config, ray_node_address
from lanai.mesh.raycluster.connection import PREFIX, last_line

SERVICES = ("speech", "vision", "language", "voice")
_NAME = re.compile(rf"^{PREFIX}(?P<service>[a-z]+)-(?P<index>\d+)$")


@dataclass(frozen=True)
class Resources:
    """What each actor asks Ray for. Ray counts CPUs and GPUs logically: they decide where an
    actor fits, not how many threads it runs (the node's own --*-threads flags do that)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_bytes: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)
    """e.g. {"apple_silicon": 1} for a resource a Ray node was started with (--resources)."""

    def options(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            chosen["num_gpus"] = self.num_gpus
        if self.memory_bytes:
            chosen["memory"] = self.memory_bytes
        if self.custom:
            chosen["resources"] = dict(self.custom)
        return chosen


def actor_name(service: str, index: int) -> str:
    return f"{PREFIX}{service}-{index}"


def parse_name(name: str) -> tuple[str, int] | None:
    """(service, index) of a lanai actor's name; None for any other name."""
    match = _NAME.match(name)
    return (match["service"], int(match["index"])) if match else None


def service_of(name: str) -> str:
    """The service of a lanai actor's name; "" for any other name."""
    parsed = parse_name(name)
    return parsed[0] if parsed else ""


def plan(wanted: Mapping[str, int], running: Sequence[str]) -> tuple[list[str], list[str]]:
    """(names to start, names to stop) so each service named in `wanted` has exactly that many
    replicas, numbered from 0; services not named are left as they are."""
    start, stop = [], []
    for service, count in wanted.items():
        have = sorted((parse_name(n)[1], n) for n in running if service_of(n) == service)  # type: ignore[index]
        indexes = {i for i, _ in have}
        start += [actor_name(service, i) for i in range(count) if i not in indexes]
        stop += [n for i, n in have if i >= count]
    return start, stop


def lanai_actors(ray: Any) -> list[str]:
    """Names of the lanai actors alive (or restarting) in the connected namespace."""
    return sorted(n for n in ray.util.list_named_actors() if parse_name(n))


def _prepare(service_argv: list[tuple[str, list[str]]]) -> tuple[str, list[str]]:
    """A Ray task on one machine: prepare the models these actors load, in that machine's cache
    (the packages are installed there; nothing is downloaded)."""
    import ray

    from lanai.services import models
    from lanai.services.language.engines import choose

    done: list[str] = []
    for service, argv in service_argv:
        config = machine_config(argv)
        cfg = config.config_of(service)
        engine = choose(cfg.engine) if service == "language" else None
        wanted = [(spec, engine) for spec in cfg.models]
        wanted += [(spec, None) for spec in getattr(cfg, "embedding_models", ())]  # language's encoders
        for spec, model_engine in wanted:
            resolved = models.resolve(config.home, spec, service, engine=model_engine)
            done.append(f"{resolved.name} ({resolved.source})")
    return ray_node_address(ray, ray.get_runtime_context().get_node_id()), sorted(set(done))


def prepare_everywhere(ray: Any, service_argv: list[tuple[str, list[str]]],
                       progress: Callable[[str], None]) -> None:
    """`lanai models prepare` for these services on every alive Ray node, each task pinned to
    its machine (hard affinity), so an actor never prepares at start-up or downloads."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_prepare)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(service_argv) for n in nodes]
    for ip, done in ray.get(refs):
        progress(f"models ready on {ip}: {', '.join(done) or 'none'}")


def start(ray: Any, names: Sequence[str], argv_of: Mapping[str, list[str]], resources_of: Mapping[str, Resources],
          spread: bool = True) -> list[Any]:
    """Start (or find, if already there) the actors `names`; returns their handles."""
    remote = ray.remote(NodeActor)
    handles = []
    for name in names:
        service = service_of(name)
        handles.append(remote.options(
            name=name, lifetime="detached", get_if_exists=True,
            max_restarts=-1,  # a node that dies comes back; discovery follows its new address
            max_concurrency=4,  # info() answers while stop() drains
            scheduling_strategy="SPREAD" if spread else "DEFAULT",
            **resources_of[service].options()).remote(name, argv_of[service]))
    return handles


def infos(ray: Any, names: Sequence[str], timeout: float) -> dict[str, dict[str, Any] | str]:
    """name -> the actor's info(), or why there is none (still starting, failed to start)."""
    from ray.exceptions import GetTimeoutError, RayActorError

    pending = {}
    result: dict[str, dict[str, Any] | str] = {}
    for name in names:
        try:
            pending[name] = ray.get_actor(name).info.remote()
        except ValueError:
            result[name] = "not running"
    for name, ref in pending.items():
        try:
            result[name] = ray.get(ref, timeout=timeout)
        except GetTimeoutError:
            result[name] = "starting (loading models, or waiting for a Ray node with the resources asked for)"
        except RayActorError as exc:
            result[name] = f"failed: {last_line(exc)}"
    return result


def stop(ray: Any, names: Sequence[str], grace_s: float) -> None:
    """Drain each actor, then end it for good (no restart)."""
    from ray.exceptions import GetTimeoutError, RayActorError

    handles = []
    for name in names:
        try:
            handles.append(ray.get_actor(name))
        except ValueError:
            continue
    drains = [h.stop.remote(grace_s) for h in handles]
    try:
        ray.get(drains, timeout=grace_s + 30)
    except (GetTimeoutError, RayActorError):
        pass  # killed below either way
    for handle in handles:
        ray.kill(handle, no_restart=True)

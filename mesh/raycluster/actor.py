"""A lanai node inside a Ray actor. The node is the same `Node` as `lanai node` starts, on its
own asyncio loop in a thread of the actor's process; Ray only places, restarts and stops it.

Every node flag works (`lanai ray up ... -- --speech-models tiny.en`); these are fixed:
- it listens on every address at ports the system picks (several actors share a machine), and
  reports `ip:port` (the Ray node's address) to discovery through `info()`;
- its node id is the actor's name (`lanai-speech-0`), its identity (mesh keys, certificates) in
  `$LANAI_HOME/ray/<name>`, whose `models` is the machine's own model cache;
- no router and no discovery of its own: routers find it through Ray (`--discovery ray`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from lanai.mesh.security.store import MeshDir, write_private
from lanai.services.core.privacy import keep_on_premises

log = logging.getLogger(__name__)
START_TIMEOUT_S = 600.0
"""Loading models may take minutes on a slow machine; a node that takes longer fails the actor."""
FIXED_FLAGS = ("--host", "0.0.0.0", "--port", "0", "--mesh-port", "0", "--metrics-port", "0",
               "--no-router", "--discovery", "none")
"""Before the caller's flags, so a flag given to `ray up` wins (e.g. --metrics-port -1)."""


def actor_home(base: Path, name: str) -> Path:
    """The actor's LANAI_HOME: identity of its own, models shared with the machine's cache. Where
    the machine's own home holds the mesh CA (a Kubernetes pod given the CA Secret, as the Helm
    chart's pods are), the actor starts from a copy and issues itself a certificate, as those
    pods do; otherwise it joins with --join on its first start on this machine."""
    home = base / "ray" / name
    home.mkdir(parents=True, exist_ok=True)
    (base / "models").mkdir(parents=True, exist_ok=True)
    models = home / "models"
    if not models.exists() and not models.is_symlink():
        models.symlink_to(base / "models", target_is_directory=True)
    machine, own = MeshDir(base), MeshDir(home)
    if machine.holds_ca() and not own.exists():
        own.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for source, target in ((machine.policy, own.policy), (machine.ca_key, own.ca_key), (machine.ca_cert, own.ca_cert)):
            if source.exists():  # the certificate last: a mesh dir "exists" once it is there
                write_private(target, source.read_bytes())
    return home


def machine_config(argv: list[str]) -> Any:
    """The NodeConfig these `lanai node` flags give on a Ray node, before it is made an actor's
    (its home is the machine's). Parsing it anywhere checks the flags."""
    from lanai.mesh.cli import build_parser
    from lanai.mesh.cli.serve import config_from_args

    return config_from_args(build_parser().parse_args(["node", *FIXED_FLAGS, *argv]))


def node_config(name: str, argv: list[str]) -> Any:
    """The NodeConfig of actor `name`, its home made ready (on the actor's machine only)."""
    config = machine_config(argv)
    return dataclasses.replace(config, node_id=name, home=actor_home(config.home, name))


def ray_node_address(ray: Any, node_id: str) -> str:
    """The address this Ray node was started with (`ray start --node-ip-address`), which its
    peers reach it at. Not ray.util.get_node_ip_address(): in a worker that is the address of
    the route out, which on a machine with several interfaces may be another one."""
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return str(node["NodeManagerAddress"])
    return ray.util.get_node_ip_address()  # type: ignore[no-any-return]


def join_host(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class NodeActor:
    """Decorated with ray.remote by cluster.py (so importing this needs no Ray)."""

    def __init__(self, name: str, argv: list[str]) -> None:
        keep_on_premises()
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        import ray

        from lanai.mesh.node import Node

        self.name = name
        self.ray_node = ray.get_runtime_context().get_node_id()
        self.ip = ray_node_address(ray, self.ray_node)
        config = node_config(name, argv)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lanai-node", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(Node.start(config), self._loop)
        self.node = future.result(timeout=START_TIMEOUT_S)  # an exception here fails the actor's start
        log.info("ray actor %s: node serving on %s (Ray node %s)", name, join_host(self.ip, self.node.port),
                 self.ray_node)

    def info(self) -> dict[str, Any]:
        """What discovery and `lanai ray ls` need: the address routers dial, and where it runs."""
        node = self.node
        return {
            "node_id": node.node_id,
            "address": join_host(self.ip, node.port),
            "member_address": join_host(self.ip, node.mesh_port or node.port),
            "mesh": node.trust.short_id if node.trust is not None else "",
            "services": [s.name for s in node.services],
            "metrics_port": node.metrics_port,
            "ip": self.ip,
            "ray_node": self.ray_node,
            "pid": os.getpid(),
        }

    def stop(self, grace_s: float = 10.0) -> bool:
        """Drain (the router stops sending work, in-flight calls finish) and close the node."""
        asyncio.run_coroutine_threadsafe(self.node.stop(grace_s=grace_s), self._loop).result(timeout=grace_s + 30)
        return True

"""`lanai ray up|ls|down`: lanai nodes placed on a Ray cluster by Ray's scheduler (docs/ray.md)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from lanai.mesh.cli.mesh import print_table
from lanai.mesh.raycluster import cluster
from lanai.mesh.raycluster.actor import machine_config
from lanai.mesh.raycluster.connection import NAMESPACE, RayUnavailable, connect

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "ray", help="run lanai nodes as Ray actors on a Ray cluster",
        description="Start lanai nodes as named Ray actors that Ray places by their resource requests and "
                    "restarts when they fail; a router with --discovery ray finds them (docs/ray.md).")
    p.add_argument("--address", default="auto",
                   help="the Ray cluster: auto (this machine is a Ray node), ray://HEAD:10001 (Ray Client, from "
                        "any machine) or HOST:6379 (default auto)")
    p.add_argument("--namespace", default=NAMESPACE, help=f"Ray namespace of lanai's actors (default {NAMESPACE})")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = sub.add_parser("up", help="start (or scale to) N nodes per service",
                        description="Prepare the models on every Ray node, then start lanai-SERVICE-I actors until "
                                    "each service named has exactly N (extra ones are drained and stopped). "
                                    "Flags after -- go to every node, as `lanai node` flags.")
    for service in cluster.SERVICES:
        up.add_argument(f"--{service}", type=int, default=None, metavar="N", help=f"{service} nodes")
    up.add_argument("--num-cpus", type=float, default=1.0,
                    help="logical CPUs each node asks Ray for (default 1; placement only, not threads)")
    up.add_argument("--num-gpus", type=float, default=0.0, help="GPUs each node asks for (default 0)")
    up.add_argument("--memory", default="", help="memory each node asks for: 2GiB, 800MiB (default: none asked)")
    up.add_argument("--resources", default="{}",
                    help='custom Ray resources each node needs, JSON: \'{"apple_silicon": 1}\' (default none)')
    up.add_argument("--pack", action="store_true",
                    help="let Ray pack nodes onto few machines (default: spread them over the Ray nodes)")
    up.add_argument("--timeout", type=float, default=600, help="seconds to wait for the nodes to serve (default 600)")
    up.add_argument("--no-prepare", action="store_true",
                    help="skip preparing models on every Ray node first (each node prepares its own at start)")
    up.add_argument("node_flags", nargs=argparse.REMAINDER, metavar="-- NODE FLAGS",
                    help="flags every node gets, as for `lanai node` (e.g. -- --join TOKEN --speech-models tiny.en)")
    up.set_defaults(run=run_up)

    ls = sub.add_parser("ls", help="list lanai's actors and where they serve")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_ls)

    down = sub.add_parser("down", help="drain and stop lanai's actors (all of them, or those named)")
    down.add_argument("names", nargs="*", help="actor names (default: every lanai actor in the namespace)")
    down.add_argument("--grace", type=float, default=10, help="seconds in-flight work may take (default 10)")
    down.set_defaults(run=run_down)


def parse_size(text: str) -> int:
    """Bytes in 2GiB, 800M, 1.5G, 1048576."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"--memory {text!r} is not a size; write e.g. 2GiB or 800MiB")
    return int(float(match[1]) * _UNITS[(match[2] or "")[:1].lower()])


def _resources(args: argparse.Namespace) -> cluster.Resources:
    try:
        custom = json.loads(args.resources)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--resources is not JSON ({exc.msg}); write e.g. '{{\"apple_silicon\": 1}}'") from None
    if not isinstance(custom, dict) or not all(isinstance(v, (int, float)) for v in custom.values()):
        raise ValueError("--resources must be a JSON object of numbers, e.g. '{\"apple_silicon\": 1}'")
    return cluster.Resources(args.num_cpus, args.num_gpus, parse_size(args.memory) if args.memory else 0, custom)


def _node_flags(args: argparse.Namespace) -> list[str]:
    flags = list(args.node_flags)
    return flags[1:] if flags[:1] == ["--"] else flags


def run_up(args: argparse.Namespace) -> int:
    wanted = {s: getattr(args, s) for s in cluster.SERVICES if getattr(args, s) is not None}
    if not wanted:
        print("lanai ray up: say how many nodes of which service, e.g. --speech 2 --language 1", file=sys.stderr)
        return 2
    try:
        resources = _resources(args)
        flags = _node_flags(args)
        argv_of = {s: ["--services", s, *flags] for s in wanted}
        for service in wanted:  # bad node flags fail here, not in every actor
            machine_config(argv_of[service])
        ray = connect(args.address, args.namespace)
        to_start, to_stop = cluster.plan(wanted, cluster.lanai_actors(ray))
        starting = sorted({cluster.service_of(n) for n in to_start})
        if starting and not args.no_prepare:
            cluster.prepare_everywhere(ray, [(s, argv_of[s]) for s in starting],
                                       progress=lambda line: print(line, file=sys.stderr))
        if to_stop:
            print(f"lanai ray up: stopping {', '.join(to_stop)}", file=sys.stderr)
            cluster.stop(ray, to_stop, grace_s=10)
        cluster.start(ray, to_start, argv_of, {s: resources for s in wanted}, spread=not args.pack)
        names = [n for n in cluster.lanai_actors(ray) if cluster.service_of(n) in wanted]
        return _report(cluster.infos(ray, names, timeout=args.timeout), wait_s=args.timeout)
    except (RayUnavailable, ValueError) as exc:
        print(f"lanai ray up: {exc}", file=sys.stderr)
        return 2


def _report(found: dict[str, dict[str, Any] | str], wait_s: float) -> int:
    _table(found)
    problems = sum(isinstance(info, str) for info in found.values())
    if problems:
        print(f"lanai ray up: {problems} node(s) not serving after {wait_s:.0f} s; `lanai ray ls` shows them as "
              "they come (a node waiting for resources starts when a Ray node has them)", file=sys.stderr)
    return 1 if problems else 0


def run_ls(args: argparse.Namespace) -> int:
    try:
        ray = connect(args.address, args.namespace)
        found = cluster.infos(ray, cluster.lanai_actors(ray), timeout=5)
    except RayUnavailable as exc:
        print(f"lanai ray ls: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    if not found:
        print(f"no lanai actors in Ray namespace {args.namespace!r}; start some with `lanai ray up --speech 1`")
        return 0
    _table(found)
    return 0


def run_down(args: argparse.Namespace) -> int:
    try:
        ray = connect(args.address, args.namespace)
        running = cluster.lanai_actors(ray)
        unknown = sorted(set(args.names) - set(running))
        if unknown:
            print(f"lanai ray down: no such actor(s): {', '.join(unknown)}; running: {', '.join(running) or 'none'}",
                  file=sys.stderr)
            return 2
        names = args.names or running
        started = time.monotonic()
        cluster.stop(ray, names, grace_s=args.grace)
    except RayUnavailable as exc:
        print(f"lanai ray down: {exc}", file=sys.stderr)
        return 2
    print(f"stopped {len(names)} node(s) in {time.monotonic() - started:.1f} s: {', '.join(names) or 'none'}")
    return 0


def _table(found: dict[str, dict[str, Any] | str]) -> None:
    """One row per actor: where it serves, or (last column) why it does not."""
    rows = [("NAME", "ADDRESS", "RAY NODE", "PID", "SERVICES")]
    for name, info in sorted(found.items()):
        rows.append((name, "-", "-", "-", info) if isinstance(info, str) else
                    (name, info["address"], info["ip"], str(info["pid"]), ",".join(info["services"])))
    print_table(rows)

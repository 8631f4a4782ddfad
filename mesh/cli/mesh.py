"""`lanai mesh ls`: the nodes a router sees, as a table."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc


def add_parser(commands: Any) -> None:
    p = commands.add_parser("mesh", help="look at the mesh through a router")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("ls", help="list the nodes a router knows: services, models, load, state, address")
    ls.add_argument("--to", default="localhost:50051", help="a router or node address (default localhost:50051)")
    ls.add_argument("--service", default="", help="only nodes serving this service")
    ls.add_argument("--all", action="store_true", help="also nodes that are down")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_ls)


def run_ls(args: argparse.Namespace) -> int:
    try:
        reply = asyncio.run(_list(args))
    except grpc.aio.AioRpcError as exc:
        hint = " (is it a router? start nodes without --no-router)" if exc.code() == grpc.StatusCode.UNIMPLEMENTED else ""
        print(f"lanai mesh ls: {exc.code().name}: {exc.details()}{hint}", file=sys.stderr)
        return 1
    if args.json:
        print(json_format.MessageToJson(reply))
        return 0
    rows = [("NODE", "STATE", "ADDRESS", "VIA", "SERVICES", "MODELS", "LOAD", "NOTE")]
    for n in reply.nodes:
        d = n.description
        services = ",".join(s.name for s in d.services) or "-"
        model_names = ",".join(m.name for s in d.services for m in s.models) or "-"
        load = " ".join(f"{s.service}:{s.in_flight}/{s.slots}+{s.queued}q" for s in n.last_load.services) or "-"
        state = mesh_pb2.NodeState.Name(n.state).removeprefix("NODE_STATE_").lower()
        rows.append((n.node_id or "?", state, n.address, n.discovered_by, services, model_names, load, n.state_reason))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    print(f"\n{len(reply.nodes)} node(s) seen by router {reply.router_id}", file=sys.stderr)
    return 0


async def _list(args: argparse.Namespace) -> mesh_pb2.ListNodesResponse:
    async with grpc.aio.insecure_channel(args.to) as channel:
        return await mesh_pb2_grpc.MeshStub(channel).ListNodes(
            mesh_pb2.ListNodesRequest(service=args.service, include_down=args.all), timeout=10)

"""`lanai node` and `lanai up`: run a node until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from lanai.mesh import registry
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.placement import DEFAULT_POLICY, POLICIES
from lanai.mesh.premises import Premises
from lanai.mesh.presence import DISCOVERY, MeshConfig
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security import pki
from lanai.services import models
from lanai.services.core import options
from lanai.services.core.errors import LanaiError


def add_parsers(commands: Any) -> None:
    node = commands.add_parser("node", help="run a node hosting services on this machine",
                               description="Run a node: the services named, health, reflection, "
                                           "Node/Describe + WatchLoad and Prometheus /metrics.")
    _node_flags(node, host=NodeConfig.host)
    node.set_defaults(run=run_node)
    up = commands.add_parser("up", help="run everything on this machine with the embedded default models",
                             description="One-machine lanai: a router and a node with the embedded default "
                                         "models, on localhost only (no mDNS: nothing is announced on the LAN).")
    _node_flags(up, host="127.0.0.1", discovery="none", open_door=True)
    up.set_defaults(run=run_node)
    router = commands.add_parser("router", help="run a router alone: it places every call on a node",
                                 description="A router with no services of its own: it discovers nodes and "
                                             "forwards each call to the one with capacity now.")
    _node_flags(router, host="0.0.0.0", services="")
    router.set_defaults(run=run_node)


def _node_flags(p: argparse.ArgumentParser, host: str, discovery: str = MeshConfig.discovery,
                services: str | None = None, open_door: bool = False) -> None:
    """The flags of a node; a default differs from NodeConfig()'s only where the command says so
    (`lanai up`: loopback, no discovery, open; `lanai router`: no services)."""
    defaults = NodeConfig()
    sec = defaults.security
    security = p.add_argument_group("mesh trust")
    security.add_argument("--join", default=sec.join, metavar="TOKEN",
                          help="join the mesh of this invite (from `lanai mesh invite`; first start only; "
                               "default $LANAI_JOIN)")
    security.add_argument("--mesh-port", type=int, default=defaults.mesh_port,
                          help=f"port other members call, mutual TLS only (default {defaults.mesh_port}; 0 picks one)")
    security.add_argument("--insecure", action="store_true",
                          help="labs only: plaintext, no mesh membership, no API keys (any device may join and call)")
    if open_door:
        p.set_defaults(open=True, client_tls=False)
        security.add_argument("--keys", dest="open", action="store_false",
                              help="require API keys from clients (by default `lanai up` is open on localhost)")
    else:
        p.set_defaults(client_tls=sec.client_tls)
        security.add_argument("--open", action="store_true",
                              help="clients need no API key (TLS stays on); anyone who reaches the port may call")
    security.add_argument("--metrics-token", default=sec.metrics_token,
                          help="require `Authorization: Bearer TOKEN` on /metrics and /sd (default $LANAI_METRICS_TOKEN)")
    if services is None:
        p.add_argument("--services", default=",".join(defaults.services),
                       help=f"comma-separated, from: {', '.join(registry.names())} (default all)")
        p.add_argument("--no-router", action="store_true",
                       help="serve only this node's services (by default a node also routes, so clients may "
                            "connect to any node)")
    else:
        p.set_defaults(services=services, no_router=False)
    p.add_argument("--discovery", default=discovery,
                   help=f"how to find other nodes: {', '.join(DISCOVERY)}, or several comma-separated such as "
                        f"mdns,ray (default {discovery}); static needs --peers")
    p.add_argument("--ray-address", default=MeshConfig.ray_address,
                   help="ray discovery: the Ray cluster (auto: this machine is a Ray node; ray://HEAD:10001 from "
                        f"elsewhere) (default {MeshConfig.ray_address})")
    p.add_argument("--ray-namespace", default=MeshConfig.ray_namespace,
                   help=f"ray discovery: the namespace of `lanai ray up` (default {MeshConfig.ray_namespace})")
    p.add_argument("--peers", default="", help="host:port of nodes' mesh ports (their client ports when --insecure), "
                                               "comma-separated (implies --discovery static)")
    p.add_argument("--dns", default="", metavar="NAME[:PORT]",
                   help="dns discovery: the name whose records are the nodes (a Kubernetes headless Service)")
    p.add_argument("--dns-server", default="", metavar="IP[:PORT]", help="resolver for --dns (default: the system's)")
    p.add_argument("--interface", default="", help="announce and browse mDNS on this interface only")
    p.add_argument("--advertise-address", default="", help="announce and browse mDNS on this address only")
    p.add_argument("--policy", choices=sorted(POLICIES), default=DEFAULT_POLICY,
                   help=f"placement policy (default {DEFAULT_POLICY})")
    p.add_argument("--allow", default=",".join(defaults.mesh.allow),
                   help="networks work may be sent to, comma-separated CIDRs (default: loopback, private, "
                        "link-local)")
    p.add_argument("--host", default=host, help=f"address to listen on (default {host})")
    p.add_argument("--port", type=int, default=defaults.port,
                   help=f"client gRPC port; 0 picks a free one (default {defaults.port})")
    p.add_argument("--metrics-host", default=host, help=f"address of /metrics (default {host})")
    p.add_argument("--metrics-port", type=int, default=defaults.metrics_port,
                   help=f"Prometheus port; 0 picks one, -1 disables (default {defaults.metrics_port})")
    doors = p.add_argument_group("doors (OpenAI-compatible HTTP API, web console, Wyoming for Home Assistant)")
    doors.add_argument("--http-port", type=int, default=-1 if defaults.http_port is None else defaults.http_port,
                       help="OpenAI-compatible API and web console; 0 picks one, -1 turns it off (default "
                            f"{'off' if defaults.http_port is None else defaults.http_port}, or $LANAI_HTTP_PORT)")
    doors.add_argument("--wyoming-port", type=int, default=-1,
                       help="Wyoming server for Home Assistant (10300 is usual), announced over mDNS; 0 picks one "
                            "(default off)")
    doors.add_argument("--wyoming-allow", default="",
                       help="networks that may connect to the Wyoming door, comma-separated CIDRs; it has no keys "
                            "(default: loopback only on a node that requires API keys, else loopback, private and "
                            "link-local)")
    p.add_argument("--node-id", default="", help="override the id stored in LANAI_HOME")
    p.add_argument("--home", type=Path, default=None, help="model cache and node id (default $LANAI_HOME "
                                                             "or ~/.cache/lanai)")
    for entry in registry.entries():
        options.add_flags(p.add_argument_group(f"{entry.name} service"), entry.config, entry.name)
    p.add_argument("--max-message-mb", type=int, default=defaults.max_message_bytes // (1024 * 1024),
                   help=f"largest request message (default {defaults.max_message_bytes // (1024 * 1024)} MiB)")
    p.add_argument("--grace", type=float, default=defaults.grace_s,
                   help=f"seconds in-flight work may take on shutdown (default {defaults.grace_s:g})")


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    security = SecurityConfig(insecure=args.insecure, client_tls=args.client_tls and not args.insecure,
                              require_keys=not args.open, join=args.join, metrics_token=args.metrics_token)
    peers = options.names(args.peers)
    # --peers and --dns bring their backend and replace mdns (the default) and none; ray stays.
    implied = [b for b, given in (("static", peers), ("dns", args.dns)) if given]
    asked = [b for b in options.names(args.discovery) if not implied or b not in ("mdns", "none")]
    mesh = MeshConfig(router=not args.no_router, policy=args.policy, allow=options.names(args.allow),
                      discovery=",".join(dict.fromkeys(implied + asked)) or "none", peers=peers,
                      dns_name=args.dns, dns_server=args.dns_server, ray_address=args.ray_address,
                      ray_namespace=args.ray_namespace, interface=args.interface,
                      advertise_address=args.advertise_address)
    configs = {entry.name: options.from_args(entry.config, args, entry.name) for entry in registry.entries()}
    return NodeConfig(
        home=args.home or models.default_home(), services=options.names(args.services), host=args.host, port=args.port, mesh_port=args.mesh_port,
        metrics_host=args.metrics_host, security=security,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port, node_id=args.node_id,
        http_port=None if args.http_port < 0 else args.http_port,
        wyoming_port=None if args.wyoming_port < 0 else args.wyoming_port,
        wyoming_allow=tuple(str(n) for n in Premises.parse(args.wyoming_allow).networks) if args.wyoming_allow else (),
        max_message_bytes=args.max_message_mb * 1024 * 1024, grace_s=args.grace, configs=configs, mesh=mesh)


def run_node(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve(config_from_args(args), announce=args.command == "up"))
    except (LanaiError, ValueError, OSError, pki.PkiError) as exc:
        print(f"lanai {args.command}: {exc}", file=sys.stderr)
        return 2


async def _serve(config: NodeConfig, announce: bool) -> int:
    node = await Node.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = f"{'localhost' if config.host in ('127.0.0.1', '::1') else config.host}:{node.port}"
    # Machine-readable line for scripts and tests; a person reads the log above it.
    role = "node" if node.services else "router"
    print(f"lanai: {role} {node.node_id} ready on {address} metrics_port={node.metrics_port} "
          f"mesh_port={node.mesh_port} http_port={node.http_port} wyoming_port={node.wyoming_port}", flush=True)
    if announce:
        print(f"  try:  lanai transcribe some.wav --to {address}\n"
              f"        lanai vision classify photo.jpg --to {address}\n"
              f"        lanai chat --to {address}\n"
              f"        lanai say \"Hello from the mesh\" --to {address}\n"
              f"        lanai assist --to {address}\n"
              f"        lanai mesh ls --to {address}\n"
              f"        grpcurl -plaintext {address} list\n"
              + (f"        open http://{address.split(':')[0]}:{node.http_port}/   (the console; the OpenAI API "
                 f"is under /v1)\n" if node.http_port else "") + "  stop: Ctrl-C", flush=True)
    await stop.wait()
    await node.stop()
    return 0

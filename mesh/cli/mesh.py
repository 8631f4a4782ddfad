"""`lanai mesh`: look at the mesh through a router (`ls`), and own it: `init`, `invite`,
`revoke`, `ca`, `key create|list|revoke` (these run on the machine that holds the mesh CA)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.advertise import choose_addresses, local_interfaces
from lanai.mesh.cli import connect
from lanai.mesh.security import authority, pki
from lanai.mesh.security import policy as policies
from lanai.mesh.security.invites import InviteError, Token
from lanai.mesh.security.store import MeshDir, write_private
from lanai.services import models
from lanai.services.language.engines import ENGINES


def add_parser(commands: Any) -> None:
    p = commands.add_parser("mesh", help="look at the mesh, invite machines, manage keys and members")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("ls", help="list the nodes a router knows: services, models, load, state, address")
    connect.add_flags(ls, "a router or node address")
    ls.add_argument("--service", default="", help="only nodes serving this service")
    ls.add_argument("--all", action="store_true", help="also nodes that are down")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_ls)

    init = sub.add_parser("init", help="create a mesh: its CA, kept on this machine (which then admits the others)")
    _home(init)
    init.set_defaults(run=run_init)
    invite = sub.add_parser("invite", help="print a one-line join command for another machine")
    _home(invite)
    invite.add_argument("--ttl", default="1h", help="how long the invite works: 90s, 30m, 1h, 2d (default 1h)")
    invite.add_argument("--uses", type=int, default=1, help="machines that may join with it (default 1)")
    invite.add_argument("--address", default="", help="the address joiners reach this machine's node at "
                                                      "(default: the address it announces)")
    invite.set_defaults(run=run_invite)
    revoke = sub.add_parser("revoke", help="remove a node from the mesh: no member uses or answers it again")
    _home(revoke)
    revoke.add_argument("node_id")
    revoke.set_defaults(run=run_revoke)
    cert = sub.add_parser("cert", help="a client certificate: clients that hold one call the mesh port, no key "
                                       "needed (`lanai mesh revoke NAME` stops it)")
    _home(cert)
    cert.add_argument("name")
    cert.add_argument("--out", type=Path, required=True, help="folder for NAME.key and NAME.crt (and ca.crt)")
    cert.set_defaults(run=run_cert)
    ca = sub.add_parser("ca", help="print the mesh CA certificate (clients trust it: --ca, grpcurl -cacert)")
    _home(ca)
    ca.set_defaults(run=run_ca)

    key = sub.add_parser("key", help="API keys for clients").add_subparsers(dest="key_action", required=True,
                                                                           metavar="ACTION")
    create = key.add_parser("create", help="make a key (printed once; only its hash is kept)")
    create.add_argument("name")
    listing = key.add_parser("list", help="the keys, when they were made, whether revoked")
    drop = key.add_parser("revoke", help="stop a key working, on every member within seconds")
    drop.add_argument("name")
    for q in (create, listing, drop):
        _home(q)
    create.set_defaults(run=run_key_create)
    listing.set_defaults(run=run_key_list)
    drop.set_defaults(run=run_key_revoke)


def _home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=None, help="LANAI_HOME whose mesh to use (default $LANAI_HOME or "
                                                           "~/.cache/lanai)")


def _mesh(args: argparse.Namespace) -> MeshDir:
    return MeshDir(args.home or models.default_home())


def _fail(args: argparse.Namespace, message: object) -> int:
    print(f"lanai mesh {args.action}: {message}", file=sys.stderr)
    return 2


def run_init(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    try:
        mesh_id = authority.init(mesh, _now())
    except FileExistsError as exc:
        return _fail(args, exc)
    print(f"created mesh {mesh_id[:16]} in {mesh.path} (CA fingerprint sha256:{mesh_id})\n"
          "next: start `lanai node` here, then `lanai mesh invite` for each machine to add")
    return 0


def run_invite(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    try:
        ttl = _seconds(args.ttl)
        endpoint = mesh.read_json(mesh.endpoint)
        if not endpoint:
            return _fail(args, "no node has run on this machine yet: start `lanai node` first (the invite points "
                               "joiners at it)")
        if not endpoint.get("metrics_port"):
            return _fail(args, "the node here runs without --metrics-port; joiners fetch the mesh CA from that port")
        invite_id, secret = authority.invite(mesh, _now(), ttl, args.uses)
        fingerprint = pki.fingerprint(mesh.load_ca())
    except (pki.PkiError, InviteError, ValueError) as exc:
        return _fail(args, exc)
    token = Token(fingerprint, args.address or _reachable(endpoint), int(endpoint["port"]),
                  int(endpoint["metrics_port"]), str(endpoint["node_id"]), invite_id, secret)
    print(f"lanai node --join {token.encode()}")
    print(f"(valid {args.ttl}, for {args.uses} machine(s); it pins mesh {fingerprint[:16]}: run it on the machine "
          "to add)", file=sys.stderr)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    try:
        known = args.node_id in mesh.read_members()
        updated = authority.change_policy(mesh, lambda p: policies.revoke_node(p, args.node_id, authority.unix_now()))
    except (pki.PkiError, policies.PolicyError) as exc:
        return _fail(args, exc)
    note = "" if known else " (this CA never signed that id; revoked all the same)"
    print(f"revoked {args.node_id}{note}; policy version {updated.version}. The node on this machine hands it to "
          "every member within seconds.")
    return 0


def run_cert(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    try:
        key, cert = authority.client_certificate(mesh, args.name, _now())
    except (pki.PkiError, authority.Refused) as exc:
        return _fail(args, exc)
    for path, data in ((args.out / f"{args.name}.key", key), (args.out / f"{args.name}.crt", cert),
                       (args.out / "ca.crt", mesh.ca_cert.read_bytes())):
        write_private(path, data)
    print(f"wrote {args.out}/{args.name}.key, {args.name}.crt and ca.crt; call a node's mesh port with them "
          f"(--cert {args.out}/{args.name}.crt --cert-key {args.out}/{args.name}.key --ca {args.out}/ca.crt)")
    return 0


def run_ca(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(pki.cert_pem(_mesh(args).load_ca()).decode())
    except pki.PkiError as exc:
        return _fail(args, exc)
    return 0


def run_key_create(args: argparse.Namespace) -> int:
    key = authority.new_api_key()
    try:
        authority.change_policy(_mesh(args), lambda p: policies.add_key(p, args.name, key, authority.unix_now()))
    except (pki.PkiError, policies.PolicyError) as exc:
        return _fail(args, exc)
    print(key)
    print(f"(key {args.name!r}: shown once, only its hash is kept. Clients pass it as --key, LANAI_KEY or "
          "`authorization: Bearer KEY` metadata)", file=sys.stderr)
    return 0


def run_key_list(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    try:
        current = mesh.read_policy(mesh.load_ca())
    except (pki.PkiError, policies.PolicyError) as exc:
        return _fail(args, exc)
    rows = [("NAME", "CREATED", "STATE")] + [
        (k.name, _date(k.created), f"revoked {_date(k.revoked)}" if k.revoked else "active")
        for k in sorted(current.keys.values(), key=lambda k: k.created)]
    print_table(rows)
    return 0


def run_key_revoke(args: argparse.Namespace) -> int:
    try:
        authority.change_policy(_mesh(args), lambda p: policies.revoke_key(p, args.name, authority.unix_now()))
    except (pki.PkiError, policies.PolicyError) as exc:
        return _fail(args, exc)
    print(f"revoked key {args.name!r}; every member refuses it within seconds")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    try:
        reply = asyncio.run(_list(args))
    except grpc.aio.AioRpcError as exc:
        hint = " (is it a router? start nodes without --no-router)" if exc.code() == grpc.StatusCode.UNIMPLEMENTED else ""
        print(f"lanai mesh ls: {exc.code().name}: {exc.details()}{hint or connect.hint(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json_format.MessageToJson(reply))
        return 0
    rows = [("NODE", "STATE", "ADDRESS", "VIA", "SERVICES", "MODELS", "LOAD", "NOTE")]
    for n in reply.nodes:
        d = n.description
        services = ",".join(s.name for s in d.services) or "-"
        model_names = ",".join(m.name + (f"({m.engine})" if m.engine in ENGINES else "")
                               for s in d.services for m in s.models) or "-"
        load = " ".join(f"{s.service}:{s.in_flight}/{s.slots}+{s.queued}q" for s in n.last_load.services) or "-"
        state = mesh_pb2.NodeState.Name(n.state).removeprefix("NODE_STATE_").lower()
        rows.append((n.node_id or "?", state, n.address, n.discovered_by, services, model_names, load, n.state_reason))
    print_table(rows)
    print(f"\n{len(reply.nodes)} node(s) seen by router {reply.router_id}", file=sys.stderr)
    return 0


async def _list(args: argparse.Namespace) -> mesh_pb2.ListNodesResponse:
    async with connect.aio_channel(args) as channel:
        return await mesh_pb2_grpc.MeshStub(channel).ListNodes(
            mesh_pb2.ListNodesRequest(service=args.service, include_down=args.all), timeout=10)


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one is not padded (it may be long)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


def _reachable(endpoint: dict[str, Any]) -> str:
    """The address to put in a token: the one the node announces, or its listening address."""
    pinned = endpoint.get("advertise_address") or ""
    host = str(endpoint.get("host") or "")
    if pinned:
        return str(pinned)
    if host not in ("0.0.0.0", "::", ""):
        return host
    return choose_addresses(local_interfaces(), interface=str(endpoint.get("interface") or ""))[0]


def _seconds(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"--ttl {text!r} is not a duration like 90s, 30m, 1h or 2d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _date(unix: int) -> str:
    return f"{dt.datetime.fromtimestamp(unix, dt.timezone.utc):%Y-%m-%d %H:%M}"

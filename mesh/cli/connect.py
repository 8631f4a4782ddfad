"""How every client command reaches a node: TLS pinned to the mesh CA and an API key when the
node asks for them (a LAN node), plaintext when it does not (`lanai up` on loopback)."""

from __future__ import annotations

import argparse
import os
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from lanai.services import models

Options = Sequence[tuple[str, Any]]


class ConnectError(ValueError):
    """Flags that cannot make a connection (a file that cannot be read, --cert without --ca)."""


def add_flags(p: argparse.ArgumentParser, to_help: str = "node or router host:port") -> None:
    p.add_argument("--to", default="localhost:50051", help=f"{to_help} (default localhost:50051)")
    p.add_argument("--key", default=os.environ.get("LANAI_KEY", ""),
                   help="API key for a mesh that needs one (default $LANAI_KEY; `lanai mesh key create`)")
    p.add_argument("--ca", default=os.environ.get("LANAI_CA", ""),
                   help="the mesh CA certificate to trust (default $LANAI_CA, else this machine's mesh, if any; "
                        "`lanai mesh ca` prints it)")
    p.add_argument("--cert", default="", help="a client certificate from `lanai mesh cert` (call a mesh port with it)")
    p.add_argument("--cert-key", default="", help="the key of --cert")
    p.add_argument("--plaintext", action="store_true", help="no TLS (an --insecure mesh, or `lanai up`)")


def credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """None for plaintext. With --ca (or a local mesh CA and a node that speaks TLS): TLS, plus
    the API key on every call."""
    if args.plaintext:
        return None
    if args.cert and not args.ca:
        raise ConnectError("--cert needs --ca (the mesh CA that signed it; `lanai mesh cert` wrote ca.crt beside it)")
    if args.ca:
        ca = _read(args.ca, "--ca")
    else:
        local = models.default_home() / "mesh" / "ca.crt"
        if not local.exists() or not _speaks_tls(args.to):
            return None
        ca = local.read_bytes()
    if args.cert:
        return grpc.ssl_channel_credentials(ca, _read(args.cert_key, "--cert-key"), _read(args.cert, "--cert"))
    creds = grpc.ssl_channel_credentials(ca)
    if args.key:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(args.key))
    return creds


def aio_channel(args: argparse.Namespace, options: Options = ()) -> grpc.aio.Channel:
    creds = credentials(args)
    opts = [*options, ("grpc.enable_http_proxy", 0)]
    return grpc.aio.insecure_channel(args.to, opts) if creds is None else grpc.aio.secure_channel(args.to, creds, opts)


def channel(args: argparse.Namespace, options: Options = ()) -> grpc.Channel:
    creds = credentials(args)
    opts = [*options, ("grpc.enable_http_proxy", 0)]
    return grpc.insecure_channel(args.to, opts) if creds is None else grpc.secure_channel(args.to, creds, opts)


def hint(error: grpc.RpcError) -> str:
    """A next step for the errors a person meets first when connecting."""
    code = error.code() if hasattr(error, "code") else None
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return " (pass --key KEY or set LANAI_KEY)"
    if code is grpc.StatusCode.UNAVAILABLE:
        return " (is a node running there? a LAN node serves TLS: pass --ca FILE from `lanai mesh ca`)"
    return ""


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConnectError(f"{flag} {path}: {exc.strerror}") from None


def _speaks_tls(address: str, timeout: float = 2.0) -> bool:
    """Does the server at address answer a TLS handshake? (lanai up's loopback port does not.)"""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only asking; gRPC verifies after
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout) as raw, \
                context.wrap_socket(raw):
            return True
    except (OSError, ValueError):
        return False

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

from lanai.mesh.presence import is_loopback
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
    """None for plaintext. With --ca (or a local mesh CA and a node that speaks TLS): TLS (the
    API key travels as call metadata, see KeyMetadata)."""
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
    return grpc.ssl_channel_credentials(ca)


def aio_channel(args: argparse.Namespace, options: Options = (), *, key_interceptors: bool = True) -> grpc.aio.Channel:
    """The channel to `args.to`; with `key_interceptors=False` the caller adds `key_pairs(args)`
    to its calls itself (streams written by lanai.mesh.streamcall, which needs a plain call)."""
    creds = credentials(args)
    opts = [*options, ("grpc.enable_http_proxy", 0)]
    interceptors = aio_key_interceptors(args.key) if key_interceptors and _sends_key(args, creds) else None
    if creds is None:
        return grpc.aio.insecure_channel(args.to, opts, interceptors=interceptors)
    return grpc.aio.secure_channel(args.to, creds, opts, interceptors=interceptors)


def channel(args: argparse.Namespace, options: Options = ()) -> grpc.Channel:
    creds = credentials(args)
    opts = [*options, ("grpc.enable_http_proxy", 0)]
    plain = grpc.insecure_channel(args.to, opts) if creds is None else grpc.secure_channel(args.to, creds, opts)
    return grpc.intercept_channel(plain, KeyMetadata(args.key)) if _sends_key(args, creds) else plain


# The key travels as plain `authorization` metadata, added by an interceptor. Not
# grpc.access_token_call_credentials: gRPC Python runs a call-credentials plugin in a new thread
# per call, which cost ~10-15% of a tiny call's latency (docs/benchmarks.md, TLS).

def _sends_key(args: argparse.Namespace, creds: grpc.ChannelCredentials | None) -> bool:
    """On TLS; in the clear only to this machine (`lanai up --keys` serves plaintext on loopback).
    Not with a client certificate, which is the credential then."""
    if not args.key or args.cert:
        return False
    return creds is not None or is_loopback(args.to.rpartition(":")[0].strip("[]"))

def key_pairs(args: argparse.Namespace) -> list[tuple[str, str | bytes]]:
    """The metadata that carries the client's key on this connection (none where it is not sent)."""
    return key_metadata(args.key, None) if _sends_key(args, credentials(args)) else []


def key_metadata(key: str, metadata: Any) -> list[tuple[str, str | bytes]]:
    """`metadata` (a sequence of pairs, grpc.aio.Metadata or None) with the key added."""
    return [*(metadata or ()), ("authorization", f"Bearer {key}")]


class KeyMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the API key to every call of a sync channel."""

    def __init__(self, key: str) -> None:
        self._key = key

    def _details(self, details: Any) -> Any:
        return _CallDetails(details.method, details.timeout, key_metadata(self._key, details.metadata),
                            details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: float | None, metadata: Any, credentials: Any,
                 wait_for_ready: bool | None, compression: Any) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def aio_key_interceptors(key: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding the API key to every call of an asyncio channel: one per call shape
    (grpc.aio files an interceptor under the first shape it implements only)."""
    return [_AioUnaryUnary(key), _AioUnaryStream(key), _AioStreamUnary(key), _AioStreamStream(key)]


class _AioKey:
    def __init__(self, key: str) -> None:
        self._key = key

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(details.method, details.timeout,
                                          grpc.aio.Metadata(*key_metadata(self._key, details.metadata)),
                                          details.credentials, details.wait_for_ready)


class _AioUnaryUnary(_AioKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioKey, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                     requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _AioStreamStream(_AioKey, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                      requests: Any) -> Any:
        return await continuation(self._details(details), requests)


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

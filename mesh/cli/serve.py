"""`lanai node` and `lanai up`: run a node until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from lanai.mesh.node import KNOWN_SERVICES, Node, NodeConfig
from lanai.mesh.placement import POLICIES
from lanai.mesh.premises import DEFAULT_ALLOWED
from lanai.mesh.presence import DISCOVERY, MeshConfig
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security import pki
from lanai.services import models
from lanai.services.errors import LanaiError
from lanai.services.language.config import LanguageConfig
from lanai.services.language.engines import CHOICES, LLAMA_CPP_SLOTS, MLX_SLOTS
from lanai.services.speech.config import SpeechConfig
from lanai.services.vision.config import VisionConfig


def add_parsers(commands: Any) -> None:
    node = commands.add_parser("node", help="run a node hosting services on this machine",
                               description="Run a node: the services named, health, reflection, "
                                           "Node/Describe + WatchLoad and Prometheus /metrics.")
    _node_flags(node, host="0.0.0.0")
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


def _node_flags(p: argparse.ArgumentParser, host: str, discovery: str = "mdns",
                services: str = ",".join(KNOWN_SERVICES), open_door: bool = False) -> None:
    cores = os.cpu_count() or 1
    security = p.add_argument_group("mesh trust")
    security.add_argument("--join", default=os.environ.get("LANAI_JOIN", ""), metavar="TOKEN",
                          help="join the mesh of this invite (from `lanai mesh invite`; first start only)")
    security.add_argument("--mesh-port", type=int, default=NodeConfig.mesh_port,
                          help=f"port other members call, mutual TLS only (default {NodeConfig.mesh_port}; 0 picks one)")
    security.add_argument("--insecure", action="store_true",
                          help="labs only: plaintext, no mesh membership, no API keys (any device may join and call)")
    if open_door:
        p.set_defaults(open=True, client_tls=False)
        security.add_argument("--keys", dest="open", action="store_false",
                              help="require API keys from clients (by default `lanai up` is open on localhost)")
    else:
        p.set_defaults(client_tls=True)
        security.add_argument("--open", action="store_true",
                              help="clients need no API key (TLS stays on); anyone who reaches the port may call")
    security.add_argument("--metrics-token", default=os.environ.get("LANAI_METRICS_TOKEN", ""),
                          help="require `Authorization: Bearer TOKEN` on /metrics and /sd (default $LANAI_METRICS_TOKEN)")
    if services:
        p.add_argument("--services", default=services, help=f"comma-separated, from: {', '.join(KNOWN_SERVICES)}")
        p.add_argument("--no-router", action="store_true",
                       help="serve only this node's services (by default a node also routes, so clients may "
                            "connect to any node)")
    else:
        p.set_defaults(services="", no_router=False)
    p.add_argument("--discovery", choices=DISCOVERY, default=discovery,
                   help=f"how to find other nodes (default {discovery}); static needs --peers")
    p.add_argument("--peers", default="", help="host:port of nodes' mesh ports (their client ports when --insecure), "
                                               "comma-separated (implies --discovery static)")
    p.add_argument("--dns", default="", metavar="NAME[:PORT]",
                   help="dns discovery: the name whose records are the nodes (a Kubernetes headless Service)")
    p.add_argument("--dns-server", default="", metavar="IP[:PORT]", help="resolver for --dns (default: the system's)")
    p.add_argument("--interface", default="", help="announce and browse mDNS on this interface only")
    p.add_argument("--advertise-address", default="", help="announce and browse mDNS on this address only")
    p.add_argument("--policy", choices=sorted(POLICIES), default="least-loaded",
                   help="placement policy (default least-loaded)")
    p.add_argument("--allow", default=",".join(DEFAULT_ALLOWED),
                   help="networks work may be sent to, comma-separated CIDRs (default: loopback, private, "
                        "link-local)")
    p.add_argument("--host", default=host, help=f"address to listen on (default {host})")
    p.add_argument("--port", type=int, default=NodeConfig.port,
                   help=f"client gRPC port; 0 picks a free one (default {NodeConfig.port})")
    p.add_argument("--metrics-host", default=host, help=f"address of /metrics (default {host})")
    p.add_argument("--metrics-port", type=int, default=9464, help="Prometheus port; 0 picks one, -1 disables")
    p.add_argument("--node-id", default="", help="override the id stored in LANAI_HOME")
    p.add_argument("--home", type=Path, default=None, help="model cache and node id (default $LANAI_HOME "
                                                             "or ~/.cache/lanai)")
    p.add_argument("--speech-models", default="base",
                   help="embedded model names or model directories, comma-separated; the first is the default")
    # Measured on 2 cores (bench/speech.py): 2 slots x 1 thread served 1.9x the requests of 1 x 2.
    p.add_argument("--speech-slots", type=int, default=min(cores, max(2, cores // 2)),
                   help="transcriptions at once (default: half the cores, at least 2, at most the cores)")
    p.add_argument("--speech-queue", type=int, default=8, help="requests that may wait for a slot (default 8)")
    p.add_argument("--speech-streams", type=int, default=16, help="open streaming sessions allowed (default 16)")
    p.add_argument("--speech-threads", type=int, default=0, help="CPU threads per slot (default: cores / slots)")
    p.add_argument("--speech-device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--speech-compute-type", default="int8", help="CTranslate2 compute type (default int8)")
    p.add_argument("--max-audio-s", type=float, default=3 * 3600, help="longest audio per request (default 3 h)")
    p.add_argument("--vision-models", default=",".join(VisionConfig.models),
                   help="embedded model names or model directories, comma-separated; the first of each task "
                        f"(classify, faces, ocr) is its default (default {','.join(VisionConfig.models)})")
    p.add_argument("--vision-slots", type=int, default=min(cores, max(2, cores // 2)),
                   help="images processed at once (default: half the cores, at least 2, at most the cores)")
    p.add_argument("--vision-queue", type=int, default=VisionConfig.max_queue,
                   help=f"requests that may wait for a slot (default {VisionConfig.max_queue})")
    p.add_argument("--vision-threads", type=int, default=0, help="onnxruntime threads per slot (default: cores / slots)")
    p.add_argument("--vision-device", default="auto", help="auto (CUDA/CoreML when present), cpu or cuda")
    p.add_argument("--max-image-pixels", type=int, default=VisionConfig.max_pixels,
                   help=f"largest image accepted, width x height (default {VisionConfig.max_pixels:,})")
    p.add_argument("--language-models",
                   default=os.environ.get("LANAI_LANGUAGE_MODELS") or ",".join(LanguageConfig.models),
                   help="generation models: embedded names, GGUF files (llama.cpp) or mlx-lm model directories, "
                        "comma-separated; the first is the default (default $LANAI_LANGUAGE_MODELS, else "
                        f"{','.join(LanguageConfig.models)}; smollm2-135m is the small, fast one)")
    p.add_argument("--language-engine", default=LanguageConfig.engine, choices=CHOICES,
                   help="auto: mlx on Apple silicon, llama.cpp elsewhere (default auto)")
    p.add_argument("--language-embedding-models", default=",".join(LanguageConfig.embedding_models),
                   help="embedding models (embedded names or folders with model.onnx and tokenizer.json), "
                        f"comma-separated, '' for none (default {','.join(LanguageConfig.embedding_models)})")
    p.add_argument("--language-slots", type=int, default=LanguageConfig.slots,
                   help="generations decoded together (default: the engine's; llama.cpp "
                        f"{LLAMA_CPP_SLOTS}, mlx {MLX_SLOTS})")
    p.add_argument("--language-threads", type=int, default=LanguageConfig.threads,
                   help="CPU threads for generation (llama.cpp) and embeddings (default: every core)")
    p.add_argument("--language-context", type=int, default=LanguageConfig.context_length,
                   help="llama.cpp: context tokens per slot, prompt and answer (default 2048)")
    p.add_argument("--language-queue", type=int, default=LanguageConfig.max_queue,
                   help=f"requests that may wait for a place in the batch (default {LanguageConfig.max_queue})")
    p.add_argument("--max-tokens", type=int, default=LanguageConfig.max_tokens_limit,
                   help=f"most tokens one request may ask for (default {LanguageConfig.max_tokens_limit})")
    p.add_argument("--language-device", default="auto",
                   help="auto (mlx: Metal on Apple silicon; llama.cpp: a GPU when its build has one), cpu, or gpu "
                        "(cuda is the same)")
    p.add_argument("--language-blas", default="auto",
                   help="Linux CPU: auto preloads Debian's OpenBLAS when installed, off keeps mlx's bundled BLAS, "
                        "or a path to a libblas.so.3")
    p.add_argument("--max-message-mb", type=int, default=64, help="largest request message (default 64 MiB)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds in-flight work may take on shutdown")


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    speech = SpeechConfig(
        models=_names(args.speech_models),
        slots=args.speech_slots, max_queue=args.speech_queue, max_streams=args.speech_streams,
        cpu_threads=args.speech_threads, device=args.speech_device, compute_type=args.speech_compute_type,
        max_audio_s=args.max_audio_s)
    vision = VisionConfig(
        models=_names(args.vision_models), slots=args.vision_slots, max_queue=args.vision_queue,
        cpu_threads=args.vision_threads, device=args.vision_device, max_pixels=args.max_image_pixels)
    language = LanguageConfig(
        models=_names(args.language_models), embedding_models=_names(args.language_embedding_models),
        engine=args.language_engine, slots=args.language_slots, threads=args.language_threads,
        context_length=args.language_context, max_queue=args.language_queue, max_tokens_limit=args.max_tokens,
        device="gpu" if args.language_device == "cuda" else args.language_device, blas=args.language_blas)
    security = SecurityConfig(insecure=args.insecure, client_tls=args.client_tls and not args.insecure,
                              require_keys=not args.open, join=args.join, metrics_token=args.metrics_token)
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    mesh = MeshConfig(router=not args.no_router, policy=args.policy, allow=tuple(args.allow.split(",")),
                      discovery="static" if peers else "dns" if args.dns else args.discovery, peers=peers,
                      dns_name=args.dns, dns_server=args.dns_server, interface=args.interface,
                      advertise_address=args.advertise_address)
    return NodeConfig(
        home=args.home or models.default_home(), services=tuple(s.strip() for s in args.services.split(",") if s),
        host=args.host, port=args.port, mesh_port=args.mesh_port, metrics_host=args.metrics_host, security=security,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port, node_id=args.node_id,
        max_message_bytes=args.max_message_mb * 1024 * 1024, grace_s=args.grace, speech=speech, vision=vision,
        language=language, mesh=mesh)


def _names(flag: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in flag.split(",") if name.strip())


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
          f"mesh_port={node.mesh_port}", flush=True)
    if announce:
        print(f"  try:  lanai transcribe some.wav --to {address}\n"
              f"        lanai vision classify photo.jpg --to {address}\n"
              f"        lanai chat --to {address}\n"
              f"        lanai mesh ls --to {address}\n"
              f"        grpcurl -plaintext {address} list\n  stop: Ctrl-C", flush=True)
    await stop.wait()
    await node.stop()
    return 0

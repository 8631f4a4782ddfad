"""`lanai batch KIND ...`: a folder of recordings or images, or a JSONL file of prompts or texts,
through the mesh (lanai.mesh.batch), one JSON line per input in --out."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.batch import inputs, runner
from lanai.mesh.batch.journal import Journal
from lanai.mesh.batch.tasks import KINDS, Kind, make_call
from lanai.mesh.cli import connect
from lanai.mesh.cli.generate import CLI_TEMPERATURE
from lanai.mesh.cli.progress import ProgressLine

MAX_MESSAGE = 256 * 1024 * 1024
DEFAULT_CONCURRENCY = 4
"""When the router cannot say how many slots the mesh has (a node started with --no-router)."""


class NoNodes(RuntimeError):
    """The router knows no node that serves the batch's service."""


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "batch", help="run a folder of files or a file of prompts through the mesh, resumably",
        description="Send every input to the mesh (through a router, which places each on a node with room), "
                    "write one JSON line per input to --out as it completes, and show progress. Rerunning the "
                    "same command skips the inputs already in --out, so an interrupted batch goes on where it "
                    "stopped. Inputs that fail are listed at the end; they never stop the batch.")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS.values():
        k = kinds.add_parser(kind.name, help=kind.help)
        if kind.inputs == "files":
            k.add_argument("inputs", nargs="+", metavar="DIR|FILE|GLOB",
                           help=f"folders (searched recursively for {' '.join(kind.extensions)}), files or globs "
                                "(quote them; ** recurses)")
        else:
            flag = "--prompts" if kind.name == "generate" else "--texts"
            k.add_argument(flag, dest="jsonl", type=Path, required=True, metavar="FILE.jsonl",
                           help=f"one JSON object per line with {' or '.join(map(repr, kind.fields))} and an "
                                "optional \"id\" (default line-N), or one JSON string per line")
        k.add_argument("--out", type=Path, required=True, help="JSONL results, appended as inputs complete")
        connect.add_flags(k, "router (or node) host:port")
        k.add_argument("--concurrency", type=int, default=0,
                       help="inputs in flight at once (default: twice the slots of the nodes serving "
                            f"{kind.service}, as the router reports them)")
        k.add_argument("--retries", type=int, default=3,
                       help="more tries for an input that failed for a passing reason: no node free, a node "
                            "gone, a deadline (default 3)")
        k.add_argument("--retry-failed", action="store_true",
                       help="also try again the inputs an earlier run found bad")
        k.add_argument("--timeout", type=float, default=600.0, help="deadline of one input in seconds (default 600)")
        k.add_argument("--model", default="", help="model name (default: the node's default)")
        _kind_flags(k, kind)
        k.set_defaults(run=run)


def _kind_flags(k: argparse.ArgumentParser, kind: Kind) -> None:
    if kind.name == "transcribe":
        k.add_argument("--language", default="", help="ISO 639-1 code (default: detect per file)")
        k.add_argument("--vad-filter", action="store_true", help="skip silence before decoding")
        k.add_argument("--word-timestamps", action="store_true")
        k.add_argument("--prompt", default="", help="initial prompt: names, jargon, spelling")
    elif kind.service == "vision":
        k.add_argument("--min-confidence", type=float, default=0.0, help="drop results below this (0 to 1)")
        k.add_argument("--max-side", type=int, default=0, help="downscale to this longest side first (pixels)")
        k.add_argument("--top", type=int, default=5, help="classify: labels per image (default 5)")
    elif kind.name == "generate":
        k.add_argument("--system", default="", help="system message for prompts given as text")
        k.add_argument("--max-tokens", type=int, default=0, help="most tokens per answer (default: the node's)")
        k.add_argument("--temperature", type=float, default=CLI_TEMPERATURE,
                       help=f"default {CLI_TEMPERATURE}; a line's \"temperature\" wins")
        k.add_argument("--seed", type=int, default=None, help="same seed and options give the same text")


def run(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind]
    name = f"lanai batch {kind.name}"
    if args.concurrency < 0 or args.retries < 0:
        print(f"{name}: --concurrency and --retries must not be negative", file=sys.stderr)
        return 2
    try:
        items = (inputs.files(args.inputs, kind.extensions) if kind.inputs == "files"
                 else inputs.jsonl(args.jsonl, kind.fields))
        journal = Journal(args.out)
        journal.load()
    except (inputs.InputError, ValueError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if args.retry_failed:
        journal.records = {k: r for k, r in journal.records.items() if r.get("ok")}
    keys = {item.key for item in items}
    failed_before = sum(1 for k, r in journal.records.items() if k in keys and not r.get("ok") and journal.finished(k))
    try:
        summary = asyncio.run(_run(args, kind, items, journal))
    except grpc.aio.AioRpcError as exc:
        print(f"{name}: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
        return 1
    except NoNodes as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        journal.close()
    _report(name, args.out, summary, failed_before)
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


async def _run(args: argparse.Namespace, kind: Kind, items: list[inputs.Item], journal: Journal) -> runner.Summary:
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    async with connect.aio_channel(args, options) as channel:
        concurrency = args.concurrency or await _mesh_concurrency(channel, kind.service)
        todo = sum(1 for item in items if not journal.finished(item.key))
        print(f"lanai batch {kind.name}: {len(items)} inputs, {len(items) - todo} already in {args.out}, "
              f"{todo} to do, {concurrency} at a time", file=sys.stderr)
        return await runner.run(items, make_call(kind, channel, args), journal, concurrency=concurrency,
                                retries=args.retries, progress=_progress(todo))


async def _mesh_concurrency(channel: grpc.aio.Channel, service: str) -> int:
    """Twice the slots the router sees for the service: every slot busy and one input waiting
    for it, so a slot never idles while the next file travels."""
    try:
        reply = await mesh_pb2_grpc.MeshStub(channel).ListNodes(mesh_pb2.ListNodesRequest(service=service),
                                                                 timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED):
            return DEFAULT_CONCURRENCY
        raise
    slots = sum(s.slots for n in reply.nodes for s in n.last_load.services if s.service == service)
    if slots == 0:
        raise NoNodes(f"no node serving {service} is up in the mesh (`lanai mesh ls` shows what the router sees)")
    return min(64, 2 * slots)


def _progress(todo: int) -> runner.Progress:
    tty = sys.stderr.isatty()
    bar = ProgressLine(todo, "inputs", enabled=tty, decimals=0)
    last_line = [0.0]

    def show(summary: runner.Summary, elapsed: float) -> None:
        done = summary.ok + len(summary.failed)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (todo - done) / rate if rate > 0 else 0.0
        text = f"{rate:.2f}/s  ETA {_clock(eta)}  failed {len(summary.failed)}"
        if tty:
            bar.update(done=done, text=text)
        elif time.monotonic() - last_line[0] >= 10 or done == todo:  # a log file gets a line every 10 s
            last_line[0] = time.monotonic()
            print(f"lanai batch: {done}/{todo} inputs, {text}", file=sys.stderr, flush=True)
        if done == todo:
            bar.clear()
    return show


def _report(name: str, out: Path, s: runner.Summary, failed_before: int) -> None:
    done = s.ok + len(s.failed)
    rate = f", {done / s.seconds:.2f}/s" if s.seconds > 0 and done else ""
    state = "interrupted" if s.interrupted else "finished"
    print(f"\n{name}: {state}: {s.ok} done, {len(s.failed)} failed, {s.skipped} skipped (already in {out}), "
          f"{s.retried} retries, {s.seconds:.1f} s{rate}", file=sys.stderr)
    for line in s.failed:
        error = line["error"]
        again = " (will be tried again on a rerun)" if line.get("retryable") else ""
        print(f"  failed: {line['input']}: {error['code']}: {error['message']}{again}", file=sys.stderr)
    if failed_before:
        print(f"  {failed_before} input(s) failed in an earlier run and were not tried again (their lines in {out} "
              "say why; --retry-failed tries them)", file=sys.stderr)
    if s.interrupted:
        print(f"  rerun the same command to go on; {out} keeps what is done", file=sys.stderr)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

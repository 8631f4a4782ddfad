"""Bulk work and Ray placement benchmark (issue 16): what `lanai batch` gains over a loop that
sends one file at a time, and what a node placed by Ray costs against a plain `lanai node`.

Everything is real and on this machine: `lanai node`/`lanai router` subprocesses on 127.0.0.1,
a Ray head started here (`ray start --head`, usage statistics off, no dashboard; Ray gives its
node this machine's address, which the Ray router's --allow lets in) and `lanai ray up --speech 1`, and `lanai batch transcribe` run as the command
people run, over a folder of N spoken clips made with espeak-ng (--files, default 40). Each
node serves tiny.en with 2 slots x 1 thread. The time of a run is the batch's own (its report
line: first input sent to last result written), not the CLI's start-up.

1. Concurrency: the folder through a router to one plain node with `--concurrency 1` (what a
   hand-written loop does: one file in flight) and with the default (twice the slots the router
   reports), alternated (one, default, one, default, ...). Reports files/s and the ratio of the
   medians (default / one at a time). On 2 cores the node's two slots share them, so this
   shows what keeping the slots busy is worth here, not what a machine with more cores gains.
2. Ray placement: the same batch at the default concurrency through a router following the plain
   node (`--peers`) and through a router following the Ray actor (`--discovery ray`), in
   alternating runs. Calls never pass through Ray (the router dials the actor's own gRPC port),
   so the ratio of medians (Ray / plain) should be about 1: target >= 0.95.

Prints a markdown table per part and writes every raw number, with the environment, to JSON.
Needs tiny.en prepared in $LANAI_HOME, espeak-ng, and the ray extra (`pip install 'lanai[ray]'`;
part 2 is skipped without it). About 4 minutes with the defaults.

Run:  LANAI_HOME=/path/to/home python bench/batch.py [--files 40] [--rounds 3]
                                                   [--out bench/results/batch.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import LANAI, emit, table  # noqa: E402

DISTRIBUTIONS = ("lanai", "faster-whisper", "ctranslate2", "grpcio", "ray")
NODE = ["--services", "speech", "--speech-models", "tiny.en", "--speech-slots", "2", "--speech-threads", "1",
        "--metrics-port", "-1", "--grace", "2"]
SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Our meeting notes stay on the machines in this building.",
             "Tomorrow the weather will be sunny and warm.",
             "Every morning the office printer jams at nine.",
             "Lanai keeps your data on your premises.")
REPORT = re.compile(r"finished: (\d+) done, (\d+) failed, .* ([\d.]+) s")


def make_clips(folder: Path, count: int) -> None:
    for i in range(count):
        subprocess.run(["espeak-ng", "-w", str(folder / f"clip{i:03d}.wav"), SENTENCES[i % len(SENTENCES)]],
                       check=True, timeout=60)


def run_batch(folder: Path, router: str, work: Path, concurrency: int | None) -> dict[str, Any]:
    """One `lanai batch transcribe` over the whole folder (a fresh --out each time)."""
    out = work / f"run-{time.monotonic_ns()}.jsonl"
    argv = [*LANAI, "--log-level", "WARNING", "batch", "transcribe", str(folder), "--out", str(out), "--to", router,
            "--plaintext"]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    match = REPORT.search(done.stderr)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"lanai batch failed ({done.returncode}):\n{done.stderr[-2000:]}")
    ok, failed, seconds = int(match[1]), int(match[2]), float(match[3])
    nodes = sorted({json.loads(line).get("node", "") for line in out.read_text().splitlines()})
    return {"ok": ok, "failed": failed, "seconds": seconds, "files_per_s": ok / seconds, "nodes": nodes}


@contextlib.contextmanager
def ray_head(temp: Path) -> Iterator[str]:
    """A one-machine Ray cluster for this run; yields the GCS address. Stopped by killing the
    processes started with this temp dir and their children (the workers rename themselves), not
    by `ray stop`, which would stop every Ray on the machine."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = subprocess.run([ray, "start", "--head", "--port", str(port),
                              "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                              "--temp-dir", str(temp)], capture_output=True, text=True, timeout=180, env=env)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{started.stdout[-1500:]}\n{started.stderr[-1500:]}")
        yield f"127.0.0.1:{port}"
    finally:
        for pid in _tree(temp):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)


def _tree(temp: Path) -> set[int]:
    """Processes whose command line names `temp`, and all their descendants."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            pid = int(entry)
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if str(temp).encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and pid != os.getpid():
                roots.add(pid)
    found, grew = set(roots), True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def ratio_row(name: str, a: list[float], b: list[float]) -> list[Any]:
    ma, mb = statistics.median(a), statistics.median(b)
    return [name, " ".join(f"{x:.2f}" for x in a), " ".join(f"{x:.2f}" for x in b), f"{ma:.2f}", f"{mb:.2f}",
            f"{mb / ma:.3f}"]


async def part1(folder: Path, work: Path, logs: Path, rounds: int) -> dict[str, Any]:
    async with benchlib.node_process([*NODE, "--host", "127.0.0.1", "--port", "0", "--no-router", "--discovery",
                                      "none", "--node-id", "bench-plain"], logs / "plain.log") as (port, _):
        async with benchlib.node_process(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
                                          "--peers", f"127.0.0.1:{port}", "--node-id", "bench-router"],
                                         logs / "router.log", command="router") as (router_port, _):
            router = f"127.0.0.1:{router_port}"
            await asyncio.to_thread(run_batch, folder, router, work, None)  # warm-up: caches, the model's first calls
            runs: dict[str, list[dict[str, Any]]] = {"one": [], "default": []}
            for _ in range(rounds):
                for key, concurrency in (("one", 1), ("default", None)):
                    result = await asyncio.to_thread(run_batch, folder, router, work, concurrency)
                    runs[key].append(result)
                    emit(f"  {key:>7}: {result['ok']} files in {result['seconds']:.1f} s "
                         f"({result['files_per_s']:.2f}/s)")
    one = [r["files_per_s"] for r in runs["one"]]
    default = [r["files_per_s"] for r in runs["default"]]
    emit()
    emit(table(["batch", "one at a time (files/s)", "default concurrency (files/s)", "median one", "median default",
                "ratio"], [ratio_row("transcribe tiny.en", one, default)]))
    return {"runs": runs, "ratio": statistics.median(default) / statistics.median(one)}


async def part2(folder: Path, work: Path, logs: Path, rounds: int) -> dict[str, Any]:
    temp = Path(tempfile.mkdtemp(prefix="lnbray", dir="/tmp"))  # short: Ray's socket paths
    try:
        with ray_head(temp) as address:
            up = await asyncio.to_thread(subprocess.run, [
                *LANAI, "--log-level", "WARNING", "ray", "--address", address, "up", "--speech", "1", "--num-cpus",
                "1", "--", "--insecure", *NODE], capture_output=True, text=True, timeout=600)
            if up.returncode != 0:
                raise RuntimeError(f"lanai ray up failed:\n{up.stdout}\n{up.stderr[-2000:]}")
            emit(up.stdout.strip())
            # Ray picks the machine's address for its node (not 127.0.0.1), and the actor reports it:
            # the router's premises list must let that address in.
            ray_ip = up.stdout.splitlines()[1].split()[2]
            async with benchlib.node_process([*NODE, "--host", "127.0.0.1", "--port", "0", "--no-router",
                                              "--discovery", "none", "--node-id", "bench-plain"],
                                             logs / "plain2.log") as (port, _), \
                    benchlib.node_process(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--peers",
                                           f"127.0.0.1:{port}", "--node-id", "plain-router"],
                                          logs / "plain-router.log", command="router") as (plain_port, _), \
                    benchlib.node_process(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
                                           "--discovery", "ray", "--ray-address", address,
                                           "--allow", f"127.0.0.0/8,{ray_ip}/32", "--node-id", "ray-router"],
                                          logs / "ray-router.log", command="router") as (ray_port, _):
                routers = {"plain": f"127.0.0.1:{plain_port}", "ray": f"127.0.0.1:{ray_port}"}
                for router in routers.values():
                    await wait_for_a_node(router)
                    await asyncio.to_thread(run_batch, folder, router, work, None)  # warm-up
                runs: dict[str, list[dict[str, Any]]] = {"plain": [], "ray": []}
                for _ in range(rounds):
                    for key, router in routers.items():
                        result = await asyncio.to_thread(run_batch, folder, router, work, None)
                        runs[key].append(result)
                        emit(f"  {key:>5}: {result['ok']} files in {result['seconds']:.1f} s "
                             f"({result['files_per_s']:.2f}/s) on {', '.join(result['nodes'])}")
            await asyncio.to_thread(subprocess.run, [*LANAI, "--log-level", "WARNING", "ray", "--address", address,
                                                     "down"], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    plain = [r["files_per_s"] for r in runs["plain"]]
    ray = [r["files_per_s"] for r in runs["ray"]]
    ratio = statistics.median(ray) / statistics.median(plain)
    emit()
    emit(table(["node", "plain node (files/s)", "Ray actor (files/s)", "median plain", "median Ray", "ratio"],
               [ratio_row("transcribe tiny.en", plain, ray)]))
    emit(f"\nRay-placed node / plain node: {ratio:.3f} (target >= 0.95: {'PASS' if ratio >= 0.95 else 'FAIL'})")
    return {"runs": runs, "ratio": ratio, "target": 0.95, "passed": ratio >= 0.95}


async def wait_for_a_node(router: str, timeout: float = 60) -> None:
    """Until the router lists a node that is up (ray discovery polls every 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = await asyncio.to_thread(subprocess.run, [*LANAI, "mesh", "ls", "--to", router, "--plaintext"],
                                         capture_output=True, text=True, timeout=30)
        if re.search(r"^\S+\s+up\s", listed.stdout, flags=re.M):
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"router {router} lists no node that is up after {timeout:.0f} s")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help="spoken clips in the folder (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side (default 3)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch.json")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("batch benchmark: espeak-ng is missing (scripts/setup.sh --dev installs it)", file=sys.stderr)
        return 2
    has_ray = Path(sys.executable).with_name("ray").exists()
    with tempfile.TemporaryDirectory(prefix="lanai-bench-batch-") as tmp:
        work = Path(tmp)
        folder, logs = work / "clips", work / "logs"
        folder.mkdir()
        logs.mkdir()
        make_clips(folder, args.files)
        try:
            emit(f"## 1. {args.files} files: one at a time vs lanai batch's default concurrency\n")
            one = await part1(folder, work, logs, args.rounds)
            two: dict[str, Any] = {"skipped": "the ray extra is not installed"}
            if has_ray:
                emit("\n## 2. The same batch on a Ray-placed node vs a plain node\n")
                two = await part2(folder, work, logs, args.rounds)
            else:
                emit("\n## 2. skipped: the ray extra is not installed (pip install 'lanai[ray]')")
        except RuntimeError as e:
            print(f"batch benchmark: {e}", file=sys.stderr)
            return 1
    record = {"environment": benchlib.environment(DISTRIBUTIONS, files=args.files, rounds=args.rounds, node=NODE),
              "concurrency": one, "ray": two}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    emit(f"\nraw numbers: {args.out}")
    return 0 if two.get("passed", True) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

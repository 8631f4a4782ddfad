"""Chaos: mixed load through a router for several minutes while its three nodes are killed,
restarted, frozen (SIGSTOP: the cable-pull case, no reset) and thawed, one cycle a minute.
Prints calls and streams ok/failed per kind, how long moved streams waited for their new node,
and each process's resident memory at start and end; writes JSON.

    python bench/chaos.py [--minutes 5] [--period 60] [--out bench/results/chaos.json]

Targets (issue 12): 0 failed, stream move delay p90 <= 1.5 s, memory growth <= 5 %.
The mesh is on loopback (127.0.0.2-4), not network namespaces: a frozen process is what a pulled
cable looks like to its peers (open connections, no answer, no reset); the namespace version of
the cut is tests/multihost/test_stream_failover.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from benchlib import emit, environment, table  # noqa: E402

from tests.integration.chaos import Chaos, photo  # noqa: E402
from tests.integration.meeting import UTTERANCES, meeting_pcm  # noqa: E402

def espeak(folder: Path) -> Callable[[str, str], bytes]:
    def speak(text: str, name: str) -> bytes:
        path = folder / f"{name}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
        return path.read_bytes()
    return speak


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def main(args: argparse.Namespace) -> int:
    from lanai.services import models

    home = models.default_home() if not os.environ.get("LANAI_HOME") else Path(os.environ["LANAI_HOME"])
    for name in ("tiny.en", "efficientnet-lite0", "mtcnn", "pp-ocrv4", "smollm2-135m", "minilm-l6"):
        model = models.embedded(name)
        assert model is not None
        models.prepare(home, model)
    os.environ.setdefault("LANAI_LANGUAGE_MODELS", "smollm2-135m")
    with tempfile.TemporaryDirectory() as tmp:
        speak = espeak(Path(tmp))
        chaos = Chaos(home, wav=speak(UTTERANCES[1][0], "fox"), meeting_pcm=meeting_pcm(speak), image=photo())
        try:
            emit("starting 3 nodes and a router on loopback")
            await chaos.start()
            emit(f"load for {args.minutes} min, a kill/restart/freeze/thaw cycle every {args.period:.0f} s")
            report = await chaos.run(args.minutes * 60, args.period)
        finally:
            await chaos.close()
    counts = report.counts()
    moves = report.moves()
    emit(table(["kind", "ok", "failed"], [[k, ok, bad] for k, (ok, bad) in counts.items()]))
    emit()
    p50, p90 = percentile(moves, 50), percentile(moves, 90)
    emit(table(["streams moved", "delay p50 s", "p90 s", "max s"],
               [[len(moves), f"{p50:.2f}" if p50 is not None else "-", f"{p90:.2f}" if p90 is not None else "-",
                 f"{max(moves):.2f}" if moves else "-"]]))
    emit()
    growth = {name: (end - start) / start for name, (start, end) in report.memory.items() if start}
    emit(table(["process", "RSS start MiB", "RSS end MiB", "growth"],
               [[name, f"{s / 1024:.0f}", f"{e / 1024:.0f}", f"{growth.get(name, 0):+.1%}"]
                for name, (s, e) in sorted(report.memory.items())]))
    failed = report.failed()
    for outcome in failed[:20]:
        emit(f"FAILED {outcome.kind}: {outcome.error}")
    targets = {"no failed call": not failed, "move delay p90 <= 1.5 s": p90 is None or p90 <= 1.5,
               "memory growth <= 5 % (processes alive throughout)": all(g <= 0.05 for g in growth.values())}
    for name, met in targets.items():
        emit(f"{'PASS' if met else 'MISS'} {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "environment": environment(["grpcio", "faster-whisper", "onnxruntime", "xllamacpp"],
                                   minutes=args.minutes, period_s=args.period),
        "counts": {k: {"ok": ok, "failed": bad} for k, (ok, bad) in counts.items()},
        "faults": report.faults, "stream_move_delays_s": moves,
        "memory_kib": {k: {"start": s, "end": e} for k, (s, e) in report.memory.items()},
        "failed": [{"kind": o.kind, "error": o.error} for o in failed], "targets": targets,
    }, indent=2) + "\n")
    emit(f"wrote {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--period", type=float, default=60.0, help="seconds per kill/restart/freeze/thaw cycle")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    sys.exit(asyncio.run(main(parser.parse_args())))

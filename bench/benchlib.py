"""Helpers shared by the benchmark scripts: markdown tables, progress lines, the environment
record, and a `lanai node` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

# The benchmarks start many nodes on loopback: none opens the HTTP door (default 8080) unless asked.
os.environ.setdefault("LANAI_HTTP_PORT", "-1")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table with padded columns."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def short(text: str, width: int) -> str:
    """Text fit for a table cell: no pipes, at most `width` characters."""
    text = text.replace("|", "/")
    return text if len(text) <= width else text[:width - 1] + "…"


def emit(text: str = "") -> None:
    print(text, flush=True)


def environment(distributions: Sequence[str], **extra: Any) -> dict[str, Any]:
    """What a result depends on: the machine, its load, package versions, espeak-ng; plus `extra`."""
    import datetime
    import os
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    try:
        espeak: str | None = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                                            timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # benchmarks that make no speech run without it
        espeak = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(), "python": platform.python_version(),
        "versions": {d: installed(d) for d in distributions}, "espeak_ng": espeak, **extra,
    }


# --- a `lanai node` subprocess -----------------------------------------------------------------------------------

LANAI = [sys.executable, "-m", "lanai.mesh.cli"]
READY = re.compile(r" ready on \S+:(\d+)")


@contextlib.asynccontextmanager
async def node_process(node_args: Sequence[str], log_path: Path, *, start_timeout_s: float = 180.0,
                       stop_timeout_s: float = 20.0, ready_line: list[str] | None = None, command: str = "node"
                       ) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """`lanai --log-level WARNING node --insecure NODE_ARGS` in its own process (so the node and
    the benchmark's client do not share a GIL), its log in `log_path`. Yields its gRPC port and
    the process once it is ready; on exit SIGTERM, then SIGKILL after `stop_timeout_s`, also on
    errors and Ctrl-C. `ready_line`, if given, gets the ready line (it names the other ports).
    `command="router"` starts a router the same way."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*LANAI, "--log-level", "WARNING", command, "--insecure", *node_args,
                                                    stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            yield await _wait_ready(proc, log_path, start_timeout_s, ready_line), proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), stop_timeout_s)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_ready(proc: asyncio.subprocess.Process, log_path: Path, timeout_s: float,
                      ready_line: list[str] | None = None) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), left)).decode(errors="replace")
        except TimeoutError:
            break
        if not line:  # exited
            break
        if match := READY.search(line):
            if ready_line is not None:
                ready_line.append(line)
            return int(match.group(1))
    await asyncio.sleep(0.2)  # let a dying process finish its log
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the node did not become ready (exit code {proc.returncode}); its log:\n{tail}")

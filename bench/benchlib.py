"""Reporting helpers shared by the benchmark scripts: markdown tables and progress lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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

    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(), "python": platform.python_version(),
        "versions": {d: installed(d) for d in distributions}, "espeak_ng": espeak, **extra,
    }

"""What a batch works through: files matched by folders and globs, or the lines of a JSONL file."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """The batch cannot start: nothing matched, or the prompts file cannot be read."""


@dataclass(frozen=True)
class Item:
    key: str
    """Names the input in the output (`"input"`): the file's path as matched, or the line's id."""
    path: Path | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    """For a JSONL input: the line's object (text, prompt, messages, ...)."""
    problem: str = ""
    """Why this input cannot be sent (a line that is not JSON): reported, never sent."""


def files(patterns: Sequence[str], extensions: Iterable[str]) -> list[Item]:
    """Every file named, under a folder named (recursively, these extensions only) or matched by
    a glob (`**` recurses), once each, in sorted order per pattern."""
    wanted = {e.lower() for e in extensions}
    seen: set[str] = set()
    items: list[Item] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matched = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
        elif path.is_file():
            matched = [path]
        else:
            matched = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matched:
                raise InputError(f"{pattern}: no such file or folder, and no file matches it as a glob")
        for p in matched:
            if str(p) not in seen:
                seen.add(str(p))
                items.append(Item(key=str(p), path=p))
    if not items:
        raise InputError(f"no input files ({', '.join(sorted(wanted))}) in {', '.join(patterns)}")
    return items


def jsonl(path: Path, required: Sequence[str]) -> list[Item]:
    """One item per non-empty line: a JSON object with an optional "id" (default "line-N") and
    one of `required`, or a bare JSON string (taken as the first of `required`). A line that is
    neither becomes an item with a problem: it is reported in the output, the rest still run."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key = f"line-{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append(Item(key=key, problem=f"line {number} is not JSON: {exc.msg}"))
            continue
        if isinstance(value, str):
            value = {required[0]: value}
        if not isinstance(value, dict):
            items.append(Item(key=key, problem=f"line {number} is not a JSON object or string"))
            continue
        key = str(value.get("id", key))
        if key in seen:
            items.append(Item(key=f"{key}@line-{number}", problem=f"line {number}: id {key!r} is used twice"))
            continue
        seen.add(key)
        if not any(name in value for name in required):
            items.append(Item(key=key, problem=f"line {number} has none of {', '.join(map(repr, required))}"))
            continue
        items.append(Item(key=key, fields=value))
    if not items:
        raise InputError(f"{path} has no lines")
    return items

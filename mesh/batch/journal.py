"""The output file of a batch, which is also where a rerun learns what is done.

One JSON object per line, appended and flushed as each input completes, so an interrupted batch
loses at most the inputs in flight. A rerun skips inputs whose newest line succeeded or failed
for good (bad input), and retries those that ran out of retries on a transient error (a node
down); at the end of a run the file is rewritten with one line per input if a retry left two."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._file: IO[str] | None = None

    def load(self) -> None:
        """Read what an earlier run wrote. A last line cut off by a crash is dropped (its input runs
        again); a line that is not one of ours means the file is not a batch output: refuse."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record["input"]
            except (json.JSONDecodeError, KeyError, TypeError):
                if number == len(lines) and line.startswith('{"input":'):  # cut off by a crash mid-write
                    break
                raise ValueError(f"{self.path} line {number} is not a lanai batch result; "
                                 "choose another --out or move the file") from None
            self.records[str(key)] = record
            self._lines += 1

    def finished(self, key: str) -> bool:
        record = self.records.get(key)
        return record is not None and (record.get("ok", False) or not record.get("retryable", False))

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            if self._file.tell() and not self._ends_with_newline():
                self._file.write("\n")  # after a cut-off line: start a fresh one
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        self.records[str(record["input"])] = record
        self._lines += 1

    def close(self) -> None:
        """Flush; rewrite with one line per input (the newest) if a rerun appended a second one."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if self._lines > len(self.records) or self._cut_off():
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for record in self.records.values():
                    f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._lines = len(self.records)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _cut_off(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()

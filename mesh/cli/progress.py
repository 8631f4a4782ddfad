"""A one-line progress bar on stderr, redrawn in place; off when stderr is not a terminal."""

from __future__ import annotations

import sys


class ProgressLine:
    def __init__(self, total: float, unit: str, enabled: bool, decimals: int = 1) -> None:
        self.total, self.unit, self.enabled = max(total, 1e-6), unit, enabled
        self._width, self._decimals = 5 + decimals, decimals
        self._done, self._text = 0.0, ""

    def update(self, done: float | None = None, text: str | None = None) -> None:
        if done is not None:
            self._done = min(done, self.total)
        if text is not None:
            self._text = text.strip()
        if not self.enabled:
            return
        filled = int(20 * self._done / self.total)
        shown, total = f"{self._done:{self._width}.{self._decimals}f}", f"{self.total:.{self._decimals}f}"
        line = f"[{'#' * filled}{'.' * (20 - filled)}] {shown}/{total} {self.unit}  {self._text}"
        sys.stderr.write("\r\033[K" + line[:120])
        sys.stderr.flush()

    def clear(self) -> None:
        """Wipe the bar (before printing a line of output; the next update draws it again)."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

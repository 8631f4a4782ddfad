"""Stop sequences on streamed text: a stop string may span several tokens, so text that could
be the start of one is held back until it is clear either way. Pure; no model needed."""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str, *, final: bool = False) -> tuple[str, bool]:
        """Take new text; return (text safe to emit now, whether a stop sequence matched).
        On a match the emitted text ends right before the stop sequence, which is dropped."""
        if not self._stops:
            return text, False
        pending = self._held + text
        hits = [i for i in (pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return pending[:min(hits)], True
        keep = 0 if final else self._partial_suffix(pending)
        self._held = pending[len(pending) - keep:] if keep else ""
        return pending[:len(pending) - keep], False

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest end of `text` that is a proper prefix of some stop sequence."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

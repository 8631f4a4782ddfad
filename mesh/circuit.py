"""A per-node circuit breaker as plain values: trips after consecutive failures, probes back."""

from __future__ import annotations

from dataclasses import dataclass, replace

FAILURES_TO_OPEN = 3
COOLDOWN_S = 2.0


@dataclass(frozen=True)
class Circuit:
    """Closed: calls flow. Open: none until `cooldown_s` has passed, then one probe call
    (half-open); its success closes the circuit, its failure opens it again."""

    failures: int = 0
    """Consecutive failures."""
    opened_at: float | None = None
    """Clock reading when it opened; None while closed."""
    probing: bool = False
    """A half-open probe call is in flight."""

    def is_open(self) -> bool:
        return self.opened_at is not None

    def allows(self, now: float, cooldown_s: float = COOLDOWN_S) -> bool:
        """Whether a call may go to the node now (a probe when the circuit is half-open)."""
        if self.opened_at is None:
            return True
        return not self.probing and now - self.opened_at >= cooldown_s

    def started(self, now: float, cooldown_s: float = COOLDOWN_S) -> Circuit:
        """A call was sent; on an open circuit it is the probe."""
        return replace(self, probing=True) if self.is_open() and self.allows(now, cooldown_s) else self

    def succeeded(self) -> Circuit:
        return Circuit()

    def failed(self, now: float, threshold: int = FAILURES_TO_OPEN) -> Circuit:
        failures = self.failures + 1
        if self.is_open() or failures >= threshold:
            return Circuit(failures, now, probing=False)  # (re)open: wait a full cool-down again
        return Circuit(failures)

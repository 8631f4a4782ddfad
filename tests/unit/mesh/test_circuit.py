"""lanai.mesh.circuit: the per-node circuit breaker, as plain values and an injected clock."""

from __future__ import annotations

import dataclasses

import pytest

from lanai.mesh.circuit import COOLDOWN_S, FAILURES_TO_OPEN, Circuit

T0 = 1000.0


def fail(c: Circuit, times: int, now: float = T0) -> Circuit:
    for _ in range(times):
        c = c.failed(now)
    return c


def opened(now: float = T0) -> Circuit:
    return fail(Circuit(), 3, now)


def test_the_constants_are_as_documented() -> None:
    assert FAILURES_TO_OPEN == 3
    assert COOLDOWN_S == 2.0


def test_closed_allows_at_any_time() -> None:
    c = Circuit()
    assert not c.is_open()
    assert c.allows(0.0) and c.allows(T0) and c.allows(-5.0)


def test_opens_after_three_consecutive_failures() -> None:
    c = fail(Circuit(), 2)
    assert not c.is_open() and c.allows(T0)
    assert c.failures == 2
    c = c.failed(T0 + 1.0)
    assert c.is_open()
    assert c.opened_at == T0 + 1.0
    assert not c.allows(T0 + 1.0)


def test_a_success_in_between_resets_the_count() -> None:
    c = fail(Circuit(), 2).succeeded()
    assert c == Circuit()
    c = fail(c, 2)
    assert not c.is_open() and c.allows(T0)
    assert fail(c, 1).is_open()


def test_open_refuses_until_the_cool_down_has_passed() -> None:
    c = opened(T0)
    assert not c.allows(T0)
    assert not c.allows(T0 + 1.0)
    assert not c.allows(T0 + 1.999)
    assert c.allows(T0 + 2.0)
    assert c.allows(T0 + 60.0)


def test_cool_down_and_threshold_can_be_overridden() -> None:
    c = opened(T0)
    assert not c.allows(T0 + 4.9, cooldown_s=5.0)
    assert c.allows(T0 + 5.0, cooldown_s=5.0)
    assert c.allows(T0 + 0.5, cooldown_s=0.5)
    one = Circuit().failed(T0, threshold=1)
    assert one.is_open() and one.opened_at == T0
    assert not Circuit().failed(T0, threshold=2).is_open()


def test_started_on_a_closed_circuit_changes_nothing() -> None:
    c = fail(Circuit(), 2)
    assert c.started(T0) == c
    assert not c.started(T0).probing


def test_started_during_the_cool_down_is_not_a_probe() -> None:
    c = opened(T0)
    assert c.started(T0 + 1.0) == c
    assert not c.started(T0 + 1.0).probing


def test_after_the_cool_down_exactly_one_probe_is_allowed() -> None:
    c = opened(T0)
    assert c.allows(T0 + 3.0)
    probing = c.started(T0 + 3.0)
    assert probing.probing and probing.is_open()
    assert not probing.allows(T0 + 3.0)
    assert not probing.allows(T0 + 1000.0)  # a second call is refused while the probe is out
    assert probing.started(T0 + 1000.0) == probing


def test_a_probe_success_closes_the_circuit() -> None:
    c = opened(T0).started(T0 + 3.0).succeeded()
    assert c == Circuit()
    assert not c.is_open() and c.allows(T0 + 3.0)
    assert not fail(c, 2, T0 + 4.0).is_open()  # a fresh count, not three more on top


def test_a_probe_failure_reopens_with_a_fresh_cool_down_from_the_failure() -> None:
    c = opened(T0).started(T0 + 3.0).failed(T0 + 10.0)
    assert c.is_open() and not c.probing
    assert c.opened_at == T0 + 10.0
    assert not c.allows(T0 + 10.0)
    assert not c.allows(T0 + 11.9)
    assert c.allows(T0 + 12.0)
    assert c.started(T0 + 12.0).probing


def test_a_failed_probe_does_not_need_three_more_failures() -> None:
    c = opened(T0).started(T0 + 3.0).failed(T0 + 4.0)
    assert c.is_open()
    assert c.failures == 4


def test_circuits_are_immutable_values() -> None:
    c = Circuit()
    c.failed(T0)
    c.started(T0)
    assert c == Circuit()
    o = opened(T0)
    o.started(T0 + 5.0)
    o.succeeded()
    o.failed(T0 + 5.0)
    assert o == Circuit(3, T0, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.failures = 5  # type: ignore[misc]


def test_a_failed_probe_reopens_whatever_the_failure_count() -> None:
    tripped_early = Circuit().failed(T0, threshold=1)  # open after one failure
    c = tripped_early.started(T0 + 3.0).failed(T0 + 4.0)  # the default threshold of 3 is not reached
    assert c.is_open() and c.opened_at == T0 + 4.0

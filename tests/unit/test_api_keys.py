"""The bound on wrong API keys per client address (``ringlog.api.keys.KeyCheck``)."""

from __future__ import annotations

import pytest

from ringlog.api import keys as keys_module
from ringlog.api.keys import KeyCheck, TooManyWrongKeys

KEY = "dev-key-123"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _check(clock: Clock, max_failures: int = 3) -> KeyCheck:
    return KeyCheck([KEY], max_failures=max_failures, window_s=60.0, clock=clock)


def test_an_address_over_the_bound_is_refused_its_right_key_too_until_the_window_ends() -> None:
    clock = Clock(1_000.0)  # 40 s into the window [960, 1020)
    check = _check(clock)
    assert [check.check("nope", "10.0.0.1") for _ in range(3)] == [None] * 3
    with pytest.raises(TooManyWrongKeys) as refused:
        check.check(KEY, "10.0.0.1")
    assert refused.value.retry_after_s == 20
    assert check.check(KEY, "10.0.0.2") == KEY, "another address is not held"
    clock.now = 1_020.0
    assert check.check(KEY, "10.0.0.1") == KEY


def test_right_keys_do_not_count() -> None:
    check = _check(Clock())
    for _ in range(10):
        assert check.check(f" {KEY} ", "10.0.0.1") == KEY
    assert check.check("nope", "10.0.0.1") is None


def test_the_last_second_of_a_window_still_says_one_second() -> None:
    clock = Clock(1_019.5)
    check = _check(clock, max_failures=1)
    check.check("nope", "10.0.0.1")
    with pytest.raises(TooManyWrongKeys) as refused:
        check.check("nope", "10.0.0.1")
    assert refused.value.retry_after_s == 1


def test_counts_are_kept_for_a_bounded_number_of_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys_module, "MAX_ADDRESSES", 2)
    check = _check(Clock(), max_failures=1)
    for address in ("a", "b", "c"):
        check.check("nope", address)
    with pytest.raises(TooManyWrongKeys):
        check.check(KEY, "b")
    assert check.check("nope", "c") is None, "not counted beyond the bound"

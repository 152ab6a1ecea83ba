"""Which configured API key a presented one is: the one rule for the bearer header and the
console's sign-in form, with a bound on wrong keys per client address.

:class:`KeyCheck` counts the wrong keys each address presents in fixed windows of
``RINGLOG_API_KEY_FAILURE_WINDOW_S``; at ``RINGLOG_API_MAX_KEY_FAILURES`` the address is
refused, its right key too, until the window ends (429 with ``Retry-After``), so guessing a
key costs at least a window per few dozen guesses. Counts live in the API process (no I/O on
the hot path): behind N processes an address gets N times the bound. Memory is bounded: the
counts are of the current window only, for at most :data:`MAX_ADDRESSES` addresses.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Sequence

#: The most addresses whose wrong keys are counted in one window (beyond, not counted).
MAX_ADDRESSES = 100_000


def matching_key(candidate: str, keys: Sequence[str]) -> str | None:
    """The key of ``keys`` equal to ``candidate`` (surrounding spaces ignored), compared in
    constant time against every key; ``None`` when there is none (or ``candidate`` is empty)."""
    given = candidate.strip().encode()
    found: str | None = None
    for key in keys:
        if given and hmac.compare_digest(key.encode(), given):
            found = key
    return found


class TooManyWrongKeys(Exception):
    """The address presented too many wrong keys lately; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many wrong API keys from this address; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class KeyCheck:
    """The check of a presented key against ``keys``, bounding wrong keys per address (see
    the module)."""

    def __init__(
        self,
        keys: Sequence[str],
        *,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = tuple(keys)
        self._max_failures = max_failures
        self._window_s = window_s
        self._clock = clock
        self._window = -1
        self._failures: dict[str, int] = {}

    def check(self, candidate: str, address: str) -> str | None:
        """The key ``candidate`` matches, or ``None`` (a wrong key, counted against
        ``address``). Raises :class:`TooManyWrongKeys` while ``address`` is over the bound,
        whatever it presents."""
        now = self._clock()
        window = int(now // self._window_s)
        if window != self._window:
            self._window, self._failures = window, {}
        if self._failures.get(address, 0) >= self._max_failures:
            left = (window + 1) * self._window_s - now
            raise TooManyWrongKeys(max(1, math.ceil(left)))
        key = matching_key(candidate, self.keys)
        if key is None and (address in self._failures or len(self._failures) < MAX_ADDRESSES):
            self._failures[address] = self._failures.get(address, 0) + 1
        return key

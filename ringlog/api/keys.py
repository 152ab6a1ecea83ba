"""Which configured API key a presented one is: the one rule for the bearer header and the
console's sign-in form."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


def matching_key(candidate: str, keys: Sequence[str]) -> str | None:
    """The key of ``keys`` equal to ``candidate`` (surrounding spaces ignored), compared in
    constant time against every key; ``None`` when there is none (or ``candidate`` is empty)."""
    given = candidate.strip().encode()
    found: str | None = None
    for key in keys:
        if given and hmac.compare_digest(key.encode(), given):
            found = key
    return found

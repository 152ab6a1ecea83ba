"""The garbage-collector policy of ringlog's long-running processes (API, projector).

What a process builds while starting (modules, settings, clients, compiled validators) lives
as long as the process. :func:`settle` moves it out of the cyclic collector's reach
(``gc.freeze``), so collections triggered by per-request or per-batch garbage never walk it
again, and raises the young generation's threshold, so decoding a batch of thousands of
records triggers a few collections instead of dozens. Reference counting still frees acyclic
garbage at once, and cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

#: objects allocated (net) before a young-generation collection; CPython's default is 700
YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Collect once, freeze what survives, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)

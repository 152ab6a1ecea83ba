"""The garbage-collector policy of ringlog's long-running processes (API, worker, projector).

What a process builds while starting (modules, settings, clients, compiled validators) lives
as long as the process. :func:`settle` moves it out of the cyclic collector's reach
(``gc.freeze``), so collections triggered by per-request or per-batch garbage never walk it
again, and raises the young generation's threshold. A young collection walks every object
allocated since the last one that is still alive; the collector counts allocations minus
frees, so garbage that reference counting frees at once never brings a collection nearer.

Processes that fold batches of the log (``folds``: worker, projector, rebuild, replay) keep
each batch's decoded records (about a dozen tracked objects apiece) alive until they are
written: at a threshold near one batch's objects nearly every batch would be walked once more
for nothing, so they collect after :data:`FOLD_YOUNG_THRESHOLD` (bench/scale: 13 % less CPU per
fold). Processes that answer requests (API, bridges) keep :data:`YOUNG_THRESHOLD`: a young
collection pauses them for as long as it walks, and few of their objects outlive a request.
Cycles are still collected in both, only less often.
"""

from __future__ import annotations

import gc

#: objects allocated (net) before a young-generation collection; CPython's default is 700
YOUNG_THRESHOLD = 50_000
#: the same, in processes that fold batches of the log
FOLD_YOUNG_THRESHOLD = 500_000


def settle(*, folds: bool = False) -> None:
    """Collect once, freeze what survives, and collect the young generation less often (far
    less in a process that ``folds`` batches of the log)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(FOLD_YOUNG_THRESHOLD if folds else YOUNG_THRESHOLD, 20, 20)

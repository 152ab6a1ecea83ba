"""Rebuild, verify and replay the SQL projections, blue/green, with the live folds.

What can be rebuilt, and where each next version is built, is :mod:`.rebuildable`; these
are the operations, each running the live projection into a fresh shadow (a
:class:`~.runner.ProjectionRunner` in a consumer group of its own, fed bulk fetches:
:mod:`.bulk`).

* :func:`rebuild` folds the whole log into a fresh shadow, catches up to the live head, swaps
  it in (:func:`.shadow.swap`: one transaction, readers never see a half-built version) and
  discards the old version. The live projector runs on meanwhile; the swap holds its writes
  only while the shadow folds what it applied last and while the rows are replaced.
  Interrupted anywhere, the live projection is untouched; a rerun starts a fresh shadow.
* :func:`verify` folds a shadow to exactly the live projection's position and diffs the two
  (:func:`.shadow.compare`); the shadow is discarded, the live one untouched.
* :func:`replay` rewinds a *stopped* processor: its state becomes the fold of the log up to a
  position (the start, or an instant), swapped in the same way, so that the processor folds
  the records after it again when it starts. Outputs it appended before stay on the log and
  are folded back first (the worker emits nothing for a partition it has not restored), and
  their ids are derived from their inputs, so nothing is emitted twice.

Each can fold its first position in ``workers`` processes, one slice of the partitions each
(:mod:`.slices`; ``None``: :func:`.slices.workers_for` decides, one per core for a large
fold, where the projection is sliced); the runner here then does the rest from their
checkpoints.

Scans: a rebuild or replay reads the log from its start (what it is for); the swap copies
the projection's rows; nothing else grows with history.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console

from ringlog.config import Settings
from ringlog.projections.bulk import Bulk, Folded
from ringlog.projections.rebuildable import RebuildRefused, Versions, rebuildable
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import Comparison
from ringlog.projections.slices import fold_in_slices, workers_for
from ringlog.streams.offsets import Position, end_offsets

# -- the operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    """A finished rebuild: the records folded up to the head, the position swapped in, the
    rows per table then, and what was done after the swap."""

    folded: Folded
    position: dict[Position, int]
    rows: dict[str, int]
    after: str | None


async def rebuild(
    settings: Settings,
    name: str,
    *,
    console: Console | None = None,
    timeout_s: float = 3_600.0,
    catch_up_s: float = 60.0,
    workers: int | None = None,
) -> Rebuilt:
    """Rebuild ``name`` blue/green (see the module); returns what was done. The last
    records, those the live projector applied while the shadow reached the head, are folded
    while the live writers are held; :class:`RebuildRefused` if that takes over
    ``catch_up_s`` (nothing is swapped then, and the live writers go on)."""
    spec = rebuildable(name)
    versions = spec.versions(settings)
    with _shadow(settings, name, versions, workers, console, timeout_s) as shadow:
        head = await end_offsets(settings.kafka, spec.topics(settings))
        async with shadow.folded_to(head, label=f"rebuild {name}") as (bulk, first):

            async def settle(live: dict[Position, int]) -> None:
                await bulk.reach(live, timeout_s=catch_up_s)

            try:
                position = await versions.swap(settle)
            except TimeoutError as exc:
                raise RebuildRefused(
                    f"the rebuild of {name} could not reach the live projection's position "
                    f"within {catch_up_s:.0f} s; nothing was swapped"
                ) from exc
        rows = versions.counts()
    after = await spec.swapped(settings) if spec.swapped is not None else None
    return Rebuilt(first, position, rows, after)


async def verify(
    settings: Settings,
    name: str,
    *,
    console: Console | None = None,
    timeout_s: float = 3_600.0,
    limit: int = 20,
    workers: int | None = None,
) -> Comparison:
    """Fold ``name`` into a shadow up to exactly the live projection's position and diff the
    two (at most ``limit`` rows shown). The live projection is not changed; its writers wait
    while the shadow folds the records it applied meanwhile and while the rows are compared."""
    versions = rebuildable(name).versions(settings)
    with _shadow(settings, name, versions, workers, console, timeout_s) as shadow:
        target = versions.live_position()
        async with shadow.folded_to(target, label=f"verify {name}", exact=True) as (bulk, _):

            async def settle(live: dict[Position, int]) -> None:
                await bulk.reach(live, exact=True, timeout_s=timeout_s)

            return await versions.compare(settle, limit)


async def refuse_while_running(settings: Settings, name: str, doing: str, *, force: bool) -> None:
    """:class:`RebuildRefused` while the consumer group of ``name``'s live processor has
    members, unless ``force`` (the embedded broker keeps listing a member that left: the
    operator says it is stopped)."""
    from ringlog.streams.admin import group_members

    group = rebuildable(name).group(settings)
    members = await group_members(settings.kafka, group)
    if members and not force:
        raise RebuildRefused(
            f"{name} is running ({members} member(s) in consumer group {group}): stop its "
            f"processes, then {doing} (--force if they are stopped and the broker still lists "
            "them, as the embedded one does)"
        )


@dataclass(frozen=True)
class Rewind:
    """A replay's plan for one partition: where the processor is and where it will be."""

    topic: str
    partition: int
    current: int
    target: int

    @property
    def again(self) -> int:
        """Records the processor will fold again (negative: it has not reached the target
        yet, and will fold that many fewer)."""
        return self.current - self.target


async def plan_replay(settings: Settings, name: str, at: datetime | None) -> list[Rewind]:
    """Per partition of ``name``'s topics, its current position and the one a replay to
    ``at`` (``None``: the log's start) gives it; nothing is changed."""
    from ringlog.streams.reading import offsets_at
    from ringlog.views.history import check_instant, log_start

    spec = rebuildable(name)
    topics = spec.topics(settings)
    if at is None:
        from ringlog.streams.admin import start_offsets

        ends = await end_offsets(settings.kafka, topics)
        target = await start_offsets(settings.kafka, sorted(ends))
    else:
        from datetime import UTC

        check_instant(at, start=await log_start(settings.kafka, topics), now=datetime.now(UTC))
        target = await offsets_at(settings.kafka, topics, at)
    current = spec.versions(settings).live_position()
    return [
        Rewind(topic, partition, current.get((topic, partition), 0), n)
        for (topic, partition), n in sorted(target.items())
    ]


async def replay(
    settings: Settings,
    name: str,
    plan: list[Rewind],
    *,
    console: Console | None = None,
    timeout_s: float = 3_600.0,
    force: bool = False,
    workers: int | None = None,
) -> Folded:
    """Rewind the stopped processor ``name`` to ``plan``'s targets: its state becomes the
    fold of the log up to them (built in a shadow, swapped in at once). Refused
    (:class:`RebuildRefused`) while its consumer group has members, unless ``force`` (the
    embedded broker keeps listing a member that left: the operator says it is stopped)."""
    spec = rebuildable(name)
    await refuse_while_running(settings, name, "replay", force=force)
    target = {(r.topic, r.partition): r.target for r in plan}
    versions = spec.versions(settings)
    with _shadow(settings, name, versions, workers, console, timeout_s) as shadow:
        async with shadow.folded_to(target, label=f"replay {name}", exact=True) as (_, folded):
            await versions.swap(None)
    if spec.swapped is not None:
        await spec.swapped(settings)
    return folded


@dataclass(frozen=True)
class _Shadow:
    """A fresh shadow of projection ``name`` being folded by ``runner`` (consumer group
    suffix ``group``), and how: ``workers`` processes first (``None``: as many as
    :func:`.slices.workers_for` says, where ``sliced``), a progress bar on ``console``."""

    settings: Settings
    name: str
    runner: ProjectionRunner[Any]
    group: str
    workers: int | None
    sliced: bool
    console: Console | None
    timeout_s: float

    @contextlib.asynccontextmanager
    async def folded_to(
        self, target: dict[Position, int], *, label: str, exact: bool = False
    ) -> AsyncIterator[tuple[Bulk, Folded]]:
        """The shadow folded to ``target`` (``exact`` as for :meth:`.Bulk.reach`): first by
        the ``workers`` processes when more than one (:func:`~.slices.fold_in_slices`), then
        by the runner, kept running in the block for what the caller folds next; and what
        was folded to get there."""
        workers = self.workers or (workers_for(target) if self.sliced else 1)
        sliced = None
        if workers > 1:
            sliced = await fold_in_slices(
                self.settings,
                self.name,
                self.group,
                target,
                workers=workers,
                exact=exact,
                console=self.console,
                label=f"{label} ({workers} processes)",
                timeout_s=self.timeout_s,
            )
        async with Bulk(self.runner, console=self.console) as bulk:
            folded = await bulk.reach(target, exact=exact, timeout_s=self.timeout_s, label=label)
            if sliced is not None:
                folded = Folded(
                    sliced.records + folded.records,
                    sliced.seconds + folded.seconds,
                    folded.position,
                )
            yield bulk, folded


@contextlib.contextmanager
def _shadow(
    settings: Settings,
    name: str,
    versions: Versions,
    workers: int | None,
    console: Console | None,
    timeout_s: float,
) -> Iterator[_Shadow]:
    """A fresh shadow of ``versions`` with a runner folding into it (in a consumer group of
    its own), closed and discarded when the block ends, however it ends.
    :class:`RebuildRefused` for more than one of ``workers`` where ``versions`` is folded by
    one process only."""
    if workers is not None and workers > 1 and not versions.sliced:
        versions.close()
        raise RebuildRefused(f"{name} is folded by one process: leave out --workers")
    group = f"-rebuild-{secrets.token_hex(4)}"
    runner = versions.open(group)
    try:
        yield _Shadow(settings, name, runner, group, workers, versions.sliced, console, timeout_s)
    finally:
        versions.close()


__all__ = ["Rebuilt", "Rewind", "plan_replay", "rebuild", "replay", "verify"]

"""Rebuild, verify and replay the SQL projections, blue/green, with the live folds.

The projections that can be rebuilt (:data:`REBUILDABLE`) are the session and timeline views,
the CRM and the worker's call state. For each, :class:`Rebuildable` knows its tables
(:class:`~.shadow.Layout`), its live consumer group, and how to open its store on a shadow
of the database and run the live projection into it (a :class:`~.runner.ProjectionRunner`
in a consumer group of its own, fed bulk fetches: :mod:`.bulk`).

* :func:`rebuild` folds the whole log into a fresh shadow, catches up to the live head, swaps
  it in (:func:`.shadow.swap`: one transaction, readers never see a half-built version) and
  discards the old version. Interrupted anywhere, the live projection is untouched; a rerun
  starts a fresh shadow.
* :func:`verify` folds a shadow to exactly the live projection's position and diffs the two
  (:func:`.shadow.compare`); the shadow is discarded, the live one untouched.
* :func:`replay` rewinds a *stopped* processor: its state becomes the fold of the log up to a
  position (the start, or an instant), swapped in the same way, so that the processor folds
  the records after it again when it starts. Outputs it appended before stay on the log and
  are folded back first (the worker emits nothing for a partition it has not restored), and
  their ids are derived from their inputs, so nothing is emitted twice.

Scans: a rebuild or replay reads the log from its start (what it is for); the swap copies
the projection's rows; nothing else grows with history.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console

from ringlog.config import Settings
from ringlog.errors import RinglogError
from ringlog.projections.bulk import BULK_MAX_RECORDS, Bulk, Folded
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import (
    Comparison,
    Layout,
    Part,
    compare,
    counts,
    discard,
    live_position,
    shadow_name,
    swap,
)
from ringlog.projections.sql import sql_engine
from ringlog.streams.offsets import Position, end_offsets


class RebuildRefused(RinglogError):
    """A rebuild, verify or replay that cannot be done as asked; the message says why."""


@dataclass
class Opened:
    """A projection's runner on a store (live or shadow) and how to close the store."""

    runner: ProjectionRunner[Any]
    close: Callable[[], None]


@dataclass(frozen=True)
class Rebuildable:
    """A projection that can be rebuilt: its layout, its live group, how to open it on a
    shadow, and what to do once a new version is live (e.g. forget a cache)."""

    name: str
    about: str
    layout: Callable[[Settings], Layout]
    group: Callable[[Settings], str]
    open: Callable[[Settings, str, str], Opened]
    swapped: Callable[[Settings], Awaitable[str]] | None = None

    def topics(self, settings: Settings) -> tuple[str, ...]:
        """The topics the projection reads."""
        return self.layout(settings).checkpoint_topics


# -- the catalogue ----------------------------------------------------------------------------


def _view_layout(view: str, topics: Callable[[Settings], tuple[str, ...]]) -> Any:
    def layout(settings: Settings) -> Layout:
        from ringlog.views.store import CHECKPOINTS, SESSIONS, TIMELINE, TIMELINE_VIEW

        read = topics(settings)
        table = TIMELINE if view == TIMELINE_VIEW else SESSIONS
        return Layout(view, (Part(table, read),), CHECKPOINTS, read)

    return layout


def _view_open(view: str) -> Callable[[Settings, str, str], Opened]:
    def opened(settings: Settings, shadow: str, group: str) -> Opened:
        from ringlog.views import view_runners
        from ringlog.views.store import ViewStore

        store = ViewStore.open(settings.crm.url, shadow=shadow)
        (runner,) = view_runners(
            settings,
            store,
            [view],
            group_suffix=group,
            redriven=False,
            max_records=BULK_MAX_RECORDS,
        )
        return Opened(runner, store.close)

    return opened


def _view_group(view: str) -> Callable[[Settings], str]:
    def group(settings: Settings) -> str:
        from ringlog.views import view_group_id

        return view_group_id(settings, view)

    return group


def _crm_layout(settings: Settings) -> Layout:
    from ringlog.projections.crm import NAME, crm_projection
    from ringlog.projections.crm.schema import CHECKPOINTS, TABLES

    parts = tuple(Part(t) for t in TABLES.values() if t is not CHECKPOINTS)
    return Layout(NAME, parts, CHECKPOINTS, crm_projection(settings).topics)


def _crm_open(settings: Settings, shadow: str, group: str) -> Opened:
    from ringlog.projections.crm import crm_runner, default_group_id
    from ringlog.projections.crm.store import CrmStore

    store = CrmStore(settings.crm.url, shadow=shadow)
    runner = crm_runner(
        settings,
        store,
        group_id=default_group_id(settings) + group,
        redriven=False,
        max_records=BULK_MAX_RECORDS,
    )
    return Opened(runner, store.close)


def _crm_group(settings: Settings) -> str:
    from ringlog.projections.crm import default_group_id

    return default_group_id(settings)


def _calls_layout(settings: Settings) -> Layout:
    from ringlog.worker.schema import CALLS, CHECKPOINTS, OUTBOX, PROCESSOR, TASK_EVENTS, TASKS

    calls, tasks = settings.topic("calls"), settings.topic("tasks")
    parts = (
        Part(CALLS, (calls,)),
        Part(OUTBOX, (calls,)),
        Part(TASKS, (tasks,)),
        Part(TASK_EVENTS, (tasks,)),
    )
    return Layout(PROCESSOR, parts, CHECKPOINTS, (calls, settings.topic("abt"), tasks))


def _calls_open(settings: Settings, shadow: str, group: str) -> Opened:
    from ringlog.worker.app import worker_projection, worker_store

    store = worker_store(settings, shadow=shadow)
    runner: ProjectionRunner[Any] = ProjectionRunner(
        settings.kafka,
        worker_projection(store),
        store,
        group_id=settings.worker.app_id + group,
        deadletter_topic=settings.topic("deadletter"),
        max_records=BULK_MAX_RECORDS,
        redriven=False,
    )
    return Opened(runner, store.close)


async def _sessions_swapped(settings: Settings) -> str:
    """The sessions view changed under the Redis cache: forget every cached session (a
    miss is answered from the view)."""
    import redis.asyncio as aioredis

    from ringlog.sessions.cache import forget_sessions

    redis = aioredis.Redis.from_url(settings.redis.url, socket_timeout=5)
    try:
        forgotten = await forget_sessions(redis, prefix=settings.redis.key_prefix)
    finally:
        await redis.aclose()
    return f"{forgotten} cached session(s) forgotten in Redis"


def _topics(*names: str) -> Callable[[Settings], tuple[str, ...]]:
    return lambda settings: tuple(settings.topic(n) for n in names)


#: The projections ``ringlog rebuild``, ``--verify`` and ``ringlog replay`` know, by name.
REBUILDABLE: dict[str, Rebuildable] = {
    r.name: r
    for r in (
        Rebuildable(
            "sessions",
            "each number's session (the sessions view; the Redis cache is forgotten)",
            _view_layout("sessions", _topics("sessions")),
            _view_group("sessions"),
            _view_open("sessions"),
            _sessions_swapped,
        ),
        Rebuildable(
            "timeline",
            "each call's events (the timeline view)",
            _view_layout("timeline", _topics("calls", "dialog", "abt")),
            _view_group("timeline"),
            _view_open("timeline"),
        ),
        Rebuildable(
            "crm",
            "the CRM tables (patients, appointments, interactions, turns, tasks)",
            _crm_layout,
            _crm_group,
            _crm_open,
        ),
        Rebuildable(
            "call-lifecycle",
            "each call's state, task index and owed effects (the worker's store)",
            _calls_layout,
            lambda settings: settings.worker.app_id,
            _calls_open,
        ),
    )
}


def rebuildable(name: str) -> Rebuildable:
    """The projection called ``name``; :class:`RebuildRefused` listing the known ones."""
    found = REBUILDABLE.get(name)
    if found is None:
        known = ", ".join(sorted(REBUILDABLE))
        raise RebuildRefused(f"no projection called {name!r}; these can be rebuilt: {known}")
    return found


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
) -> Rebuilt:
    """Rebuild ``name`` blue/green (see the module); returns what was done. The last
    records, those the live projector applied while the shadow reached the head, are folded
    while the live writers are held; :class:`RebuildRefused` if that takes over
    ``catch_up_s`` (nothing is swapped then)."""
    spec = rebuildable(name)
    layout = spec.layout(settings)
    with _shadow(settings, spec) as (shadow, opened):
        engine = sql_engine(settings.crm.url, shadow=shadow)
        try:
            async with Bulk(opened.runner, console=console) as bulk:
                head = await end_offsets(settings.kafka, layout.checkpoint_topics)
                first = await bulk.reach(head, timeout_s=timeout_s, label=f"rebuild {name}")

                async def settle(live: dict[Position, int]) -> None:
                    await bulk.reach(live, timeout_s=catch_up_s)

                try:
                    position = await swap(engine, shadow, layout, settle)
                except TimeoutError as exc:
                    raise RebuildRefused(
                        f"the rebuild of {name} could not reach the live projection's position "
                        f"within {catch_up_s:.0f} s; nothing was swapped"
                    ) from exc
            rows = counts(engine, layout)
        finally:
            engine.dispose()
    after = await spec.swapped(settings) if spec.swapped is not None else None
    return Rebuilt(first, position, rows, after)


async def verify(
    settings: Settings,
    name: str,
    *,
    console: Console | None = None,
    timeout_s: float = 3_600.0,
    limit: int = 20,
) -> Comparison:
    """Fold ``name`` into a shadow up to exactly the live projection's position and diff the
    two (at most ``limit`` rows shown). The live projection is not changed; its writers wait
    while the shadow folds the records it applied meanwhile and while the rows are compared."""
    spec = rebuildable(name)
    layout = spec.layout(settings)
    with _shadow(settings, spec) as (shadow, opened):
        engine = sql_engine(settings.crm.url, shadow=shadow)
        try:
            async with Bulk(opened.runner, console=console) as bulk:
                target = live_position(engine, layout)
                await bulk.reach(target, exact=True, timeout_s=timeout_s, label=f"verify {name}")

                async def settle(live: dict[Position, int]) -> None:
                    await bulk.reach(live, exact=True, timeout_s=timeout_s)

                return await compare(engine, shadow, layout, settle, limit=limit)
        finally:
            engine.dispose()


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
    layout = spec.layout(settings)
    topics = layout.checkpoint_topics
    if at is None:
        from ringlog.streams.admin import start_offsets

        ends = await end_offsets(settings.kafka, topics)
        target = await start_offsets(settings.kafka, sorted(ends))
    else:
        from datetime import UTC

        check_instant(at, start=await log_start(settings.kafka, topics), now=datetime.now(UTC))
        target = await offsets_at(settings.kafka, topics, at)
    engine = sql_engine(settings.crm.url)
    try:
        current = live_position(engine, layout)
    finally:
        engine.dispose()
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
) -> Folded:
    """Rewind the stopped processor ``name`` to ``plan``'s targets: its state becomes the
    fold of the log up to them (built in a shadow, swapped in at once). Refused
    (:class:`RebuildRefused`) while its consumer group has members, unless ``force`` (the
    embedded broker keeps listing a member that left: the operator says it is stopped)."""
    from ringlog.streams.admin import group_members

    spec = rebuildable(name)
    group = spec.group(settings)
    members = await group_members(settings.kafka, group)
    if members and not force:
        raise RebuildRefused(
            f"{name} is running ({members} member(s) in consumer group {group}): stop its "
            "processes, then replay (--force if they are stopped and the broker still lists "
            "them, as the embedded one does)"
        )
    layout = spec.layout(settings)
    target = {(r.topic, r.partition): r.target for r in plan}
    with _shadow(settings, spec) as (shadow, opened):
        engine = sql_engine(settings.crm.url, shadow=shadow)
        try:
            async with Bulk(opened.runner, console=console) as bulk:
                folded = await bulk.reach(
                    target, exact=True, timeout_s=timeout_s, label=f"replay {name}"
                )
                await swap(engine, shadow, layout)
        finally:
            engine.dispose()
    if spec.swapped is not None:
        await spec.swapped(settings)
    return folded


class _shadow:
    """A fresh shadow for ``spec`` with its runner open (anything an interrupted run left is
    discarded first); on exit the store is closed and the shadow discarded."""

    def __init__(self, settings: Settings, spec: Rebuildable) -> None:
        self._settings = settings
        self._spec = spec
        self._name = shadow_name(settings.crm.url, settings.kafka.topic_prefix, spec.name)
        self._opened: Opened | None = None

    def __enter__(self) -> tuple[str, Opened]:
        discard(self._settings.crm.url, self._name)
        group = f"-rebuild-{secrets.token_hex(4)}"
        self._opened = self._spec.open(self._settings, self._name, group)
        return self._name, self._opened

    def __exit__(self, *_exc: object) -> None:
        if self._opened is not None:
            self._opened.close()
        discard(self._settings.crm.url, self._name)


__all__ = [
    "REBUILDABLE",
    "RebuildRefused",
    "Rebuildable",
    "Rebuilt",
    "Rewind",
    "plan_replay",
    "rebuild",
    "rebuildable",
    "replay",
    "verify",
]

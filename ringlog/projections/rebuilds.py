"""Rebuild, verify and replay the SQL projections, blue/green, with the live folds.

The projections that can be rebuilt (:data:`REBUILDABLE`) are the session and timeline views,
the CRM, the worker's call state and the warehouse. For each, :class:`Rebuildable` knows its
topics, its live consumer group and its :class:`Versions`: where the next version is built
beside the live one (a shadow of the CRM database, :mod:`.shadow`; a schema beside the
warehouse's, :mod:`.warehouse.versions`), and how to run the live projection into it (a
:class:`~.runner.ProjectionRunner` in a consumer group of its own, fed bulk fetches:
:mod:`.bulk`).

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
from typing import Any, Protocol

from rich.console import Console
from sqlalchemy import Engine

from ringlog.config import Settings
from ringlog.errors import RinglogError
from ringlog.projections import shadow as sql_shadow
from ringlog.projections.bulk import BULK_MAX_RECORDS, Bulk, Folded
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import Comparison, Layout, Part, Settle
from ringlog.projections.sql import sql_engine
from ringlog.streams.offsets import Position, end_offsets
from ringlog.views import TIMELINE_TOPICS


class RebuildRefused(RinglogError):
    """A rebuild, verify or replay that cannot be done as asked; the message says why."""


class Versions(Protocol):
    """A projection's live version and the next one, built beside it in a shadow.

    :meth:`open` discards what an interrupted run left in the shadow and returns a runner
    folding into a fresh one; :meth:`close` closes it and discards the shadow."""

    def open(self, group: str) -> ProjectionRunner[Any]:
        """A runner (consumer group ``<live group><group>``) folding into a fresh shadow."""
        ...

    def close(self) -> None:
        """Close the shadow's store and discard the shadow (anything it holds)."""
        ...

    def live_position(self) -> dict[Position, int]:
        """The live version's checkpoint."""
        ...

    async def swap(self, settle: Settle | None) -> dict[Position, int]:
        """Make the shadow the live version, atomically for readers; with ``settle``, only
        once the shadow is at or past the live position (see :mod:`.shadow`)."""
        ...

    async def compare(self, settle: Settle, limit: int) -> Comparison:
        """Diff the shadow against the live version at exactly one position."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per live table."""
        ...


class SqlVersions:
    """The :class:`Versions` of a projection kept in the CRM database (:mod:`.shadow`)."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        layout: Layout,
        opener: Callable[[str, str], Opened],
    ) -> None:
        self._url = settings.crm.url
        self._layout = layout
        self._opener = opener
        self.shadow = sql_shadow.shadow_name(self._url, settings.kafka.topic_prefix, name)
        self._opened: Opened | None = None
        self._engine: Engine | None = None

    def open(self, group: str) -> ProjectionRunner[Any]:
        sql_shadow.discard(self._url, self.shadow)
        self._opened = self._opener(self.shadow, group)
        self._engine = sql_engine(self._url, shadow=self.shadow)
        return self._opened.runner

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
        if self._engine is not None:
            self._engine.dispose()
        self._opened = self._engine = None
        sql_shadow.discard(self._url, self.shadow)

    def live_position(self) -> dict[Position, int]:
        if self._engine is not None:
            return sql_shadow.live_position(self._engine, self._layout)
        engine = sql_engine(self._url)
        try:
            return sql_shadow.live_position(engine, self._layout)
        finally:
            engine.dispose()

    async def swap(self, settle: Settle | None) -> dict[Position, int]:
        assert self._engine is not None, "open() first"
        return await sql_shadow.swap(self._engine, self.shadow, self._layout, settle)

    async def compare(self, settle: Settle, limit: int) -> Comparison:
        assert self._engine is not None, "open() first"
        return await sql_shadow.compare(
            self._engine, self.shadow, self._layout, settle, limit=limit
        )

    def counts(self) -> dict[str, int]:
        assert self._engine is not None, "open() first"
        return sql_shadow.counts(self._engine, self._layout)


@dataclass
class Opened:
    """A projection's runner on a store (live or shadow) and how to close the store."""

    runner: ProjectionRunner[Any]
    close: Callable[[], None]


@dataclass(frozen=True)
class Rebuildable:
    """A projection that can be rebuilt: its topics and live consumer group, its
    :class:`Versions`, and what to do once a new version is live (e.g. forget a cache)."""

    name: str
    about: str
    topics: Callable[[Settings], tuple[str, ...]]
    group: Callable[[Settings], str]
    versions: Callable[[Settings], Versions]
    swapped: Callable[[Settings], Awaitable[str]] | None = None


# -- the catalogue ----------------------------------------------------------------------------


def _topics(*names: str) -> Callable[[Settings], tuple[str, ...]]:
    return lambda settings: tuple(settings.topic(n) for n in names)


def _view_versions(view: str, topics: Callable[[Settings], tuple[str, ...]]) -> Any:
    def versions(settings: Settings) -> Versions:
        from ringlog.views.store import CHECKPOINTS, SESSIONS, TIMELINE, TIMELINE_VIEW

        read = topics(settings)
        table = TIMELINE if view == TIMELINE_VIEW else SESSIONS
        layout = Layout(view, (Part(table, read),), CHECKPOINTS, read)

        def opener(shadow: str, group: str) -> Opened:
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

        return SqlVersions(settings, view, layout, opener)

    return versions


def _view_group(view: str) -> Callable[[Settings], str]:
    def group(settings: Settings) -> str:
        from ringlog.views import view_group_id

        return view_group_id(settings, view)

    return group


def _crm_topics(settings: Settings) -> tuple[str, ...]:
    from ringlog.projections.crm import crm_projection

    return crm_projection(settings).topics


def _crm_versions(settings: Settings) -> Versions:
    from ringlog.projections.crm import NAME, crm_runner, default_group_id
    from ringlog.projections.crm.schema import CHECKPOINTS, TABLES
    from ringlog.projections.crm.store import CrmStore

    parts = tuple(Part(t) for t in TABLES.values() if t is not CHECKPOINTS)
    layout = Layout(NAME, parts, CHECKPOINTS, _crm_topics(settings))

    def opener(shadow: str, group: str) -> Opened:
        store = CrmStore(settings.crm.url, shadow=shadow)
        runner = crm_runner(
            settings,
            store,
            group_id=default_group_id(settings) + group,
            redriven=False,
            max_records=BULK_MAX_RECORDS,
        )
        return Opened(runner, store.close)

    return SqlVersions(settings, NAME, layout, opener)


def _crm_group(settings: Settings) -> str:
    from ringlog.projections.crm import default_group_id

    return default_group_id(settings)


def _calls_versions(settings: Settings) -> Versions:
    from ringlog.worker.app import worker_projection, worker_store
    from ringlog.worker.schema import CALLS, CHECKPOINTS, OUTBOX, PROCESSOR, TASK_EVENTS, TASKS

    calls, tasks = settings.topic("calls"), settings.topic("tasks")
    parts = (
        Part(CALLS, (calls,)),
        Part(OUTBOX, (calls,)),
        Part(TASKS, (tasks,)),
        Part(TASK_EVENTS, (tasks,)),
    )
    layout = Layout(PROCESSOR, parts, CHECKPOINTS, _calls_topics(settings))

    def opener(shadow: str, group: str) -> Opened:
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

    return SqlVersions(settings, PROCESSOR, layout, opener)


def _calls_topics(settings: Settings) -> tuple[str, ...]:
    return (settings.topic("calls"), settings.topic("abt"), settings.topic("tasks"))


def _warehouse_versions(settings: Settings) -> Versions:
    from ringlog.projections.warehouse.versions import WarehouseVersions

    return WarehouseVersions(settings)


def _warehouse_topics(settings: Settings) -> tuple[str, ...]:
    from ringlog.projections.warehouse import TOPICS

    return tuple(settings.topic(t) for t in TOPICS)


def _warehouse_group(settings: Settings) -> str:
    from ringlog.projections.warehouse import default_group_id

    return default_group_id(settings)


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


#: The projections ``ringlog rebuild``, ``--verify`` and ``ringlog replay`` know, by name.
REBUILDABLE: dict[str, Rebuildable] = {
    r.name: r
    for r in (
        Rebuildable(
            "sessions",
            "each number's session (the sessions view; the Redis cache is forgotten)",
            _topics("sessions"),
            _view_group("sessions"),
            _view_versions("sessions", _topics("sessions")),
            _sessions_swapped,
        ),
        Rebuildable(
            "timeline",
            "each call's events (the timeline view)",
            _topics(*TIMELINE_TOPICS),
            _view_group("timeline"),
            _view_versions("timeline", _topics(*TIMELINE_TOPICS)),
        ),
        Rebuildable(
            "crm",
            "the CRM tables (patients, appointments, interactions, turns, tasks)",
            _crm_topics,
            _crm_group,
            _crm_versions,
        ),
        Rebuildable(
            "call-lifecycle",
            "each call's state, task index and owed effects (the worker's store)",
            _calls_topics,
            lambda settings: settings.worker.app_id,
            _calls_versions,
        ),
        Rebuildable(
            "warehouse",
            "the warehouse tables (Snowflake; fakesnow on the embedded stack)",
            _warehouse_topics,
            _warehouse_group,
            _warehouse_versions,
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
    versions = spec.versions(settings)
    runner = versions.open(_group())
    try:
        async with Bulk(runner, console=console) as bulk:
            head = await end_offsets(settings.kafka, spec.topics(settings))
            first = await bulk.reach(head, timeout_s=timeout_s, label=f"rebuild {name}")

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
    finally:
        versions.close()
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
    versions = spec.versions(settings)
    runner = versions.open(_group())
    try:
        async with Bulk(runner, console=console) as bulk:
            target = versions.live_position()
            await bulk.reach(target, exact=True, timeout_s=timeout_s, label=f"verify {name}")

            async def settle(live: dict[Position, int]) -> None:
                await bulk.reach(live, exact=True, timeout_s=timeout_s)

            return await versions.compare(settle, limit)
    finally:
        versions.close()


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
    target = {(r.topic, r.partition): r.target for r in plan}
    versions = spec.versions(settings)
    runner = versions.open(_group())
    try:
        async with Bulk(runner, console=console) as bulk:
            folded = await bulk.reach(
                target, exact=True, timeout_s=timeout_s, label=f"replay {name}"
            )
            await versions.swap(None)
    finally:
        versions.close()
    if spec.swapped is not None:
        await spec.swapped(settings)
    return folded


def _group() -> str:
    """The suffix of a rebuild's own consumer group (after the live group's name)."""
    return f"-rebuild-{secrets.token_hex(4)}"


__all__ = [
    "REBUILDABLE",
    "Opened",
    "RebuildRefused",
    "Rebuildable",
    "Rebuilt",
    "Rewind",
    "SqlVersions",
    "Versions",
    "plan_replay",
    "rebuild",
    "rebuildable",
    "replay",
    "verify",
]

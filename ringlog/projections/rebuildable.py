"""What can be rebuilt: each projection's topics, live group and :class:`Versions`.

:data:`REBUILDABLE` names the projections ``ringlog rebuild``, ``--verify`` and ``ringlog
replay`` know (the session and timeline views, the CRM, the worker's call state, the
warehouse). A :class:`Versions` is where a projection's next version is built beside the live
one and how it is swapped in: :class:`SqlVersions` over a shadow of the CRM database
(:mod:`.shadow`), :class:`~.warehouse.versions.WarehouseVersions` beside the warehouse's
schema. Each swap holds the live writers while it needs them still: the SQL versions lock
the live tables (:func:`.shadow.holding_live`), the warehouse's hold its projector through a
fence row (:mod:`.warehouse.holds`); so every projection is rebuilt while its projector
runs. The operations on them are in :mod:`.rebuilds`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from ringlog.config import Settings
from ringlog.errors import RinglogError
from ringlog.projections import shadow as sql_shadow
from ringlog.projections.bulk import BULK_MAX_RECORDS
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import Comparison, Layout, Part, Settle
from ringlog.projections.sql import sql_engine
from ringlog.streams.offsets import Position
from ringlog.views import TIMELINE_TOPICS


class RebuildRefused(RinglogError):
    """A rebuild, verify or replay that cannot be done as asked; the message says why."""


class Versions(Protocol):
    """A projection's live version and the next one, built beside it in a shadow.

    :meth:`open` discards what an interrupted run left in the shadow and returns a runner
    folding into a fresh one; :meth:`close` closes it and discards the shadow. Where
    :attr:`sliced`, other processes fold into the shadow one opened, with :meth:`join` and
    :meth:`leave` (:mod:`.slices`)."""

    #: whether several processes may fold its shadow at once
    sliced: bool

    def open(self, group: str) -> ProjectionRunner[Any]:
        """A runner (consumer group ``<live group><group>``) folding into a fresh shadow."""
        ...

    def join(self, group: str) -> ProjectionRunner[Any]:
        """A runner folding into the shadow as it is (opened by another process)."""
        ...

    def leave(self) -> None:
        """Close what :meth:`join` opened; the shadow stays."""
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

    sliced = True

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
        runner = self.join(group)
        self._engine = sql_engine(self._url, shadow=self.shadow)
        return runner

    def join(self, group: str) -> ProjectionRunner[Any]:
        self._opened = self._opener(self.shadow, group)
        return self._opened.runner

    def leave(self) -> None:
        if self._opened is not None:
            self._opened.close()
        if self._engine is not None:
            self._engine.dispose()
        self._opened = self._engine = None

    def close(self) -> None:
        self.leave()
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
    :class:`Versions` and what to do once a new version is live (e.g. forget a cache)."""

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


__all__ = [
    "REBUILDABLE",
    "Opened",
    "RebuildRefused",
    "Rebuildable",
    "SqlVersions",
    "Versions",
    "rebuildable",
]

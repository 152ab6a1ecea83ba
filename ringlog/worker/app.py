"""The worker's composition root: the call-lifecycle processor on the one runtime.

One :class:`~ringlog.projections.runner.ProjectionRunner` — a member of the worker group
(``RINGLOG_WORKER_APP_ID``) — folds ``calls``, ``abt`` and ``tasks`` into the
:class:`~ringlog.worker.store.WorkerStore`, with its checkpoint in the same transaction. Beside
it, one loop settles owed effects (:class:`~ringlog.worker.processor.Effects`) and places due
calls (:class:`~ringlog.worker.dispatcher.Dispatcher`) for the partitions this process owns and
has restored; it wakes after each applied batch, on (re)assignment, at the next due time, or
every ``dispatch_poll_s``. Start-up reads no history: a process joins the group and continues
from the store's checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

import redis.asyncio as aioredis
import structlog
from aiokafka.errors import KafkaError

from ringlog.adapters.retell import RetellClient
from ringlog.calls.directory import CallDirectory
from ringlog.calls.dispatch import DispatchPolicy
from ringlog.config import Settings, require_phone_hash_key
from ringlog.errors import BrokerUnavailable, ConfigurationError
from ringlog.projections.base import Event, Projection
from ringlog.projections.call_records import CallRecordStore
from ringlog.projections.retrying import until_open
from ringlog.projections.runner import ProjectionRunner
from ringlog.streams.head import LogHead
from ringlog.streams.offsets import Position
from ringlog.streams.producer import LogProducer
from ringlog.worker.dispatcher import Dispatcher
from ringlog.worker.processor import Effects
from ringlog.worker.schema import PROCESSOR, now_ms
from ringlog.worker.store import WorkerStore

log = structlog.get_logger("ringlog.worker")


def _events(events: Sequence[Event]) -> list[Event]:
    """The worker's projection: the events themselves (the store folds them)."""
    return list(events)


def worker_projection(store: WorkerStore) -> Projection[Event]:
    """The call-lifecycle processor's projection: ``calls``, ``abt`` and ``tasks``, folded by
    the store (the live worker's, and a rebuild's into a shadow)."""
    return Projection(
        name=PROCESSOR,
        topics=(store.calls_topic, store.abt_topic, store.tasks_topic),
        project=_events,
    )


class WorkerRuntime(ProjectionRunner[Event]):
    """The runtime of the worker group, waking the effects loop when its state changes."""

    def __init__(self, settings: Settings, store: WorkerStore, producer: LogProducer) -> None:
        super().__init__(
            settings.kafka,
            worker_projection(store),
            store,
            group_id=settings.worker.app_id,
            deadletter_topic=settings.topic("deadletter"),
            producer=producer,
            max_records=settings.worker.max_records,
        )
        self._store = store
        self.wake = asyncio.Event()

    async def on_applied(self, positions: Mapping[Position, int]) -> None:
        """Wake the effects loop: calls may owe something or be due."""
        self.wake.set()

    def on_assigned(self, positions: frozenset[Position]) -> None:
        """Wake the effects loop: new partitions to restore and serve."""
        log.info("partitions assigned", partitions=sorted(positions))
        self.wake.set()

    def on_revoked(self, positions: frozenset[Position] | set[Position]) -> None:
        """Stop serving revoked partitions (the loop reads :meth:`ready` each round)."""
        log.info("partitions revoked", partitions=sorted(positions))
        self.wake.set()

    def ready(self) -> frozenset[int]:
        """The ``calls`` partitions this process owns and has restored, ``abt`` included."""
        calls, abt = self._store.calls_topic, self._store.abt_topic
        return frozenset(
            p
            for topic, p in self.owned
            if topic == calls and self.restored((calls, p)) and self.restored((abt, p))
        )


def worker_store(settings: Settings, *, shadow: str | None = None) -> WorkerStore:
    """The worker's store for this deployment (in the CRM database, or its ``shadow``)."""
    return WorkerStore(
        settings.crm.url,
        shadow=shadow,
        calls_topic=settings.topic("calls"),
        tasks_topic=settings.topic("tasks"),
        abt_topic=settings.topic("abt"),
        policy=DispatchPolicy(
            max_live_calls=settings.retell.max_concurrent_calls,
            cooldown=timedelta(seconds=settings.worker.dispatch_cooldown_s),
        ),
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run the worker until ``stop`` is set; placements in flight are abandoned cleanly.

    Refuses to start (:class:`ConfigurationError`) with the default phone-hash key outside the
    embedded stack (:func:`~ringlog.config.require_phone_hash_key`).
    """
    require_phone_hash_key(settings)
    started = time.perf_counter()
    worker = settings.worker
    stores = await until_open(lambda: _open_stores(settings), what="worker store", stop=stop)
    if stores is None:
        return  # stopped while the database was unreachable
    store, records = stores
    producer = LogProducer(settings.kafka)
    retell = RetellClient(settings.retell, worker)
    runtime = WorkerRuntime(settings, store, producer)
    effects = Effects(store, producer, records)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    redis = aioredis.Redis.from_url(settings.redis.url, socket_timeout=2)
    directory = CallDirectory(
        redis,
        prefix=settings.redis.key_prefix,
        max_call=timedelta(seconds=settings.dialog.max_call_s),
    )
    dispatcher = Dispatcher(
        store, producer, retell, directory, owner=owner, lease_s=worker.dispatch_lease_s
    )

    async def serve() -> None:
        announced = False
        while not stop.is_set():
            runtime.wake.clear()
            ready = runtime.ready()
            delay = worker.dispatch_poll_s
            try:
                if ready:
                    await effects.settle(ready)
                    await dispatcher.dispatch(ready)
                    due = await store.next_due_ms(ready)
                    if due is not None:
                        delay = min(delay, max(0.0, (due - now_ms()) / 1000))
                    owned = {p for t, p in runtime.owned if t == store.calls_topic}
                    if not announced and ready == owned:
                        announced = True
                        log.info(
                            "worker ready",
                            partitions=sorted(ready),
                            seconds=round(time.perf_counter() - started, 3),
                        )
            except Exception as exc:  # noqa: BLE001 - the store or broker is down: next round
                log.warning("worker round failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(runtime.wake, stop), max(delay, 0.01))

    async def consume() -> None:
        while not stop.is_set():
            try:
                await runtime.run(stop)
            except (BrokerUnavailable, KafkaError) as exc:
                log.warning("broker unavailable; rejoining", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    try:
        await producer.start()
        await _check_co_partitioned(settings, store)
        await asyncio.gather(consume(), serve())
    finally:
        stop.set()
        await dispatcher.aclose()
        await retell.aclose()
        await redis.aclose()
        await producer.stop()
        records.close()
        store.close()


def _open_stores(settings: Settings) -> tuple[WorkerStore, CallRecordStore]:
    """The worker's store and the call-record store (both in the CRM database), opened."""
    store = worker_store(settings)
    try:
        return store, CallRecordStore(settings.crm.url)
    except BaseException:
        store.close()
        raise


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Return once either event is set."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _check_co_partitioned(settings: Settings, store: WorkerStore) -> None:
    """Refuse to run when ``calls`` and ``abt`` differ in partition count: the owner of a
    call's partition must also hold its ABT (``ringlog topics ensure`` creates them equal)."""
    head = LogHead(settings.kafka)
    try:
        calls = await head.partitions(store.calls_topic)
        abt = await head.partitions(store.abt_topic)
    finally:
        await head.stop()
    if len(calls) != len(abt):
        raise ConfigurationError(
            f"{store.abt_topic} has {len(abt)} partitions and {store.calls_topic} "
            f"{len(calls)}: the worker needs them equal (see `ringlog topics ensure`)"
        )

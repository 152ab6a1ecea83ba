"""The worker's composition root: a faust app whose agents fold ``calls`` and ``tasks`` live.

On start a task opens the producer, the Retell client and the call-record store, rebuilds the
book from the log, then runs the dispatcher. The agent waits for the rebuild, then hands every
``calls`` record to the processor (records the rebuild folded already are skipped) and wakes the
dispatcher. faust commits the agent's offsets; state never depends on them.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from ringlog.adapters.retell import RetellClient
from ringlog.config import Settings
from ringlog.projections.call_records import CallRecordStore
from ringlog.streams.consumer import LogRecord, decode_record
from ringlog.streams.producer import LogProducer
from ringlog.worker.book import CallBook
from ringlog.worker.dispatcher import Dispatcher, policy_from
from ringlog.worker.processor import CallProcessor
from ringlog.worker.rebuild import rebuild
from ringlog.worker.transport import WorkerApp


def create_worker(settings: Settings) -> faust.App:
    """Build the faust app (not started) with its agent and start-up task."""
    kafka = settings.kafka
    app = WorkerApp(
        settings.worker.app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{host}" for host in kafka.bootstrap.split(",")],
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        producer_acks=-1,
        topic_replication_factor=kafka.replication_factor,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_request_timeout=max(kafka.request_timeout_ms, kafka.session_timeout_ms + 5_000)
        / 1000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
    )
    calls = app.topic(
        settings.topic("calls"), key_serializer="raw", value_serializer="raw", internal=False
    )
    tasks = app.topic(
        settings.topic("tasks"), key_serializer="raw", value_serializer="raw", internal=False
    )
    book = CallBook()
    # clients bind to the running loop, so they are made once the app runs
    runtime: dict[str, CallProcessor | Dispatcher] = {}

    async def run_worker() -> None:
        """Open the clients, rebuild the book, then dispatch until the worker stops."""
        producer = LogProducer(kafka)
        store = CallRecordStore(settings.crm.url)
        retell = RetellClient(settings.retell, settings.worker)
        processor = CallProcessor(settings, book, producer, store)
        dispatcher = Dispatcher(
            book,
            processor,
            producer,
            retell,
            policy_from(settings.worker, settings.retell.max_concurrent_calls),
            settings.worker.dispatch_poll_s,
        )
        runtime.update(processor=processor, dispatcher=dispatcher)
        try:
            await producer.start()
            await rebuild(settings, processor)
            await dispatcher.run()
        finally:
            await retell.aclose()
            await producer.stop()
            store.close()

    app.task(run_worker)

    @app.agent(calls, name="call-lifecycle")
    async def call_lifecycle(stream: Any) -> None:
        """Fold each ``calls`` record into the book and settle the call's effects."""
        await book.ready.wait()
        processor = runtime["processor"]
        dispatcher = runtime["dispatcher"]
        assert isinstance(processor, CallProcessor) and isinstance(dispatcher, Dispatcher)
        async for event in stream.events():
            await processor.handle(_record(event.message))
            dispatcher.wake()

    @app.agent(tasks, name="task-effects")
    async def task_effects(stream: Any) -> None:
        """Reschedule or cancel the pending calls of each rescheduled or deleted task."""
        await book.ready.wait()
        processor = runtime["processor"]
        dispatcher = runtime["dispatcher"]
        assert isinstance(processor, CallProcessor) and isinstance(dispatcher, Dispatcher)
        async for event in stream.events():
            await processor.handle_task(_record(event.message))
            dispatcher.wake()

    return app


def _record(message: Any) -> LogRecord:
    """A faust message as the log client's record (decoded, errors captured)."""
    return decode_record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        key=message.key,
        value=message.value or b"",
        headers=_headers(message.headers),
    )


def run(settings: Settings, *, loglevel: str = "warning") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    app = create_worker(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    logging.getLogger("faust").setLevel(loglevel.upper())
    worker.execute_from_commandline()


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        return tuple((str(k), bytes(v)) for k, v in raw.items())
    return tuple((str(k), bytes(v)) for k, v in raw)

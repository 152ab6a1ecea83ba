"""The lifecycle processor: fold each ``calls`` record, then pay what the call owes.

``handle`` is the thin shell around the pure fold (:func:`ringlog.calls.state.apply`): it
decodes, folds, and — for live records — settles the call's owed effects:

* the call record is written (upsert), then ``call.recorded`` is appended;
* owed ABT events are appended in order with their deterministic ids, each remembered once
  acknowledged.

A record that cannot be decoded or folded goes to ``deadletter`` with the error in its headers,
and the call's later events are folded as usual. Failures while settling (store or broker down)
leave the effect owed; the dispatcher's loop retries it.
"""

from __future__ import annotations

import structlog

from ringlog.calls.record import call_record
from ringlog.calls.state import CallState, apply
from ringlog.calls.tasks import task_effects
from ringlog.calls.tracking import abt_owed, record_owed
from ringlog.config import Settings
from ringlog.projections.call_records import CallRecordStore
from ringlog.schemas import (
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRecorded,
    CallRequested,
    CallRescheduled,
    Envelope,
    TaskDeleted,
    TaskRescheduled,
    derived_event_id,
)
from ringlog.streams.consumer import LogRecord
from ringlog.streams.deadletter import dead_letter
from ringlog.streams.producer import LogProducer
from ringlog.worker.book import CallBook

log = structlog.get_logger("ringlog.worker")

PROCESSOR = "call-lifecycle"


class CallProcessor:
    """Folds ``calls`` records into the book and settles owed effects."""

    def __init__(
        self, settings: Settings, book: CallBook, log_producer: LogProducer, store: CallRecordStore
    ) -> None:
        self.book = book
        #: records the rebuild could not fold, dead-lettered once it knows which already are
        self.rebuild_poison: list[tuple[LogRecord, BaseException]] = []
        self._log = log_producer
        self._store = store
        self._deadletter = settings.topic("deadletter")

    async def handle(self, record: LogRecord, *, live: bool = True) -> CallState | None:
        """Fold one record (once per position); settle the call's effects if ``live``.

        Returns the call's new state, or ``None`` if the record was skipped or dead-lettered.
        During the rebuild (not ``live``) a record that cannot be handled is kept in
        :attr:`rebuild_poison`; the rebuild dead-letters those not dead-lettered before.
        """
        book = self.book
        if book.folded(record.topic, record.partition, record.offset):
            return None
        try:
            if record.error is not None:
                raise record.error
            envelope = record.envelope
            assert envelope is not None
            state = apply(book.get(envelope.key), envelope)
        except Exception as exc:  # noqa: BLE001 - any failure of one record is dead-lettered
            book.advance(record.topic, record.partition, record.offset)
            await self._reject(record, exc, live=live)
            return None
        book.put(state)
        book.advance(record.topic, record.partition, record.offset)
        self._clear_in_flight(envelope)
        if isinstance(envelope.payload, CallRequested) and envelope.payload.task_ref:
            for task in book.task_events.get(envelope.payload.task_ref, ()):
                await self._apply_task(task, only=state.call_ref)
            state = book.get(state.call_ref) or state
        if live:
            await self.settle(state)
        return state

    async def handle_task(self, record: LogRecord, *, live: bool = True) -> None:
        """Turn one ``tasks`` record into its calls' effects (reschedule, cancel), once.

        Each effect is appended to ``calls`` with an id derived from the task event and the
        call ref, and folded into the book at once. Until then the call is held, so the
        dispatcher never places a call that is being cancelled or moved. Reschedules and
        deletions are also kept by task, so a request for the task folded later (``tasks`` and
        ``calls`` are not ordered) gets their effects then. Effects that could not be appended
        are retried by the dispatcher loop (:meth:`resettle`).
        """
        book = self.book
        if book.folded(record.topic, record.partition, record.offset):
            return
        book.advance(record.topic, record.partition, record.offset)
        if record.error is not None:
            await self._reject(record, record.error, live=live)
            return
        task = record.envelope
        assert task is not None
        if isinstance(task.payload, TaskRescheduled | TaskDeleted):
            book.task_events.setdefault(task.payload.task_id, []).append(task)
        await self._apply_task(task)

    async def _apply_task(self, task: Envelope, *, only: str | None = None) -> None:
        """Append and fold the effects of ``task`` on every call (or only on call ``only``)."""
        book = self.book
        if only is None:
            effects = task_effects(book.states(), task)
        else:
            state = book.get(only)
            effects = task_effects([state] if state else [], task)
        book.held.update(effect.call_ref for effect in effects)
        try:
            for effect in effects:
                ref = effect.call_ref
                envelope = Envelope.new(
                    effect,
                    source=PROCESSOR,
                    correlation_id=ref,
                    causation_id=task.event_id,
                    event_id=derived_event_id(str(task.event_id), ref),
                )
                await self._log.append(envelope)
                book.put(apply(book.get(ref), envelope))
                book.held.discard(ref)
                log.info("task effect", call_ref=ref, effect=effect.event_type)
        except Exception as exc:  # noqa: BLE001 - retried by the dispatcher loop
            book.unsettled_tasks[str(task.event_id)] = task
            log.warning("task effect failed", task=task.key, error=f"{type(exc).__name__}: {exc}")
        else:
            book.unsettled_tasks.pop(str(task.event_id), None)

    async def _reject(self, record: LogRecord, exc: BaseException, *, live: bool) -> None:
        """Dead-letter a record now (live), or keep it for the rebuild to dead-letter once."""
        if live:
            await self.poisoned(record, exc)
        else:
            self.rebuild_poison.append((record, exc))

    async def poisoned(self, record: LogRecord, exc: BaseException) -> None:
        """Dead-letter ``record`` with ``exc`` in its headers."""
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "dead-lettered",
            origin=f"{record.topic}/{record.partition}/{record.offset}",
            error=error,
        )
        await dead_letter(
            self._log,
            self._deadletter,
            processor=PROCESSOR,
            error=error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
        )

    async def settle(self, state: CallState) -> None:
        """Pay what ``state`` owes; on failure keep the call for a later retry."""
        ref = state.call_ref
        try:
            await self._write_record(state)
            for abt in abt_owed(state):
                await self._log.append(
                    Envelope.new(
                        abt, source=PROCESSOR, correlation_id=ref, event_id=abt.abt_id, key=ref
                    )
                )
                self.book.mark_abt(ref, abt.name)
                state = state.with_abt(abt.name)
                log.info("abt", call_ref=ref, name=abt.name)
        except Exception as exc:  # noqa: BLE001 - retried by the dispatcher loop
            self.book.unsettled.add(ref)
            log.warning("settle failed", call_ref=ref, error=f"{type(exc).__name__}: {exc}")
        else:
            self.book.unsettled.discard(ref)

    async def resettle(self) -> None:
        """Retry the calls whose effects failed earlier, and task effects not yet appended."""
        for task in list(self.book.unsettled_tasks.values()):
            await self._apply_task(task)
        for ref in list(self.book.unsettled):
            state = self.book.get(ref)
            if state is not None:
                await self.settle(state)

    async def _write_record(self, state: CallState) -> None:
        ref = state.call_ref
        if not record_owed(state) or ref in self.book.recording:
            return
        assert state.retell_call_id is not None
        self.book.recording.add(ref)
        try:
            await self._store.write(call_record(state))
            await self._log.append(
                Envelope.new(
                    CallRecorded(
                        call_ref=ref, retell_call_id=state.retell_call_id, store="call_records"
                    ),
                    source=PROCESSOR,
                    correlation_id=ref,
                )
            )
        except BaseException:
            self.book.recording.discard(ref)
            raise

    def _clear_in_flight(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, CallDispatched | CallDispatchFailed):
            self.book.dispatching.discard(envelope.key)
        elif isinstance(payload, CallRecorded):
            self.book.recording.discard(envelope.key)
        elif isinstance(payload, CallRescheduled | CallCancelled):
            self.book.held.discard(envelope.key)  # on the log, even if its append timed out

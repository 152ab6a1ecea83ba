"""What the worker does after the runtime folded a batch: pay what calls owe.

The call states are folded by the runtime into the :class:`~ringlog.worker.store.WorkerStore`
(see :mod:`ringlog.worker.store`); this shell turns what they owe into effects, for the
partitions this process owns and has restored (so every output a previous owner appended has
been folded first):

* the call record is written (upsert), then ``call.recorded`` is appended;
* owed ABT events are appended in order with their deterministic ids;
* task effects in the outbox (``call.rescheduled`` / ``call.cancelled``) are appended.

Each effect comes back through the log (``abt`` and ``calls`` are inputs of the runtime), which
marks it done in the folded state. Until then it is remembered here, so it is not appended
twice; these memories are rebuilt on every sweep from what is still owed, so they never
outgrow the live work. A failed effect stays owed and is retried on the next sweep.
"""

from __future__ import annotations

import time
from collections.abc import Collection

import structlog

from ringlog.calls.record import call_record
from ringlog.calls.state import CallState
from ringlog.calls.tracking import abt_owed, record_owed
from ringlog.projections.call_records import CallRecordStore
from ringlog.schemas import CallRecorded, Envelope
from ringlog.streams.producer import LogProducer
from ringlog.worker.schema import PROCESSOR
from ringlog.worker.store import WorkerStore

log = structlog.get_logger("ringlog.worker")

#: Seconds after which an outbox effect appended but not yet folded is appended again.
RESEND_AFTER_S = 10.0


class Effects:
    """Settles the owed effects of the owned, restored partitions."""

    def __init__(self, store: WorkerStore, producer: LogProducer, records: CallRecordStore) -> None:
        self._store = store
        self._log = producer
        self._records = records
        #: ABT names appended per call, not yet folded back
        self._sent_abt: dict[str, frozenset[str]] = {}
        #: calls whose ``call.recorded`` was appended, not yet folded back
        self._recorded: set[str] = set()
        #: outbox effects appended, by event id, with when
        self._sent_effects: dict[str, float] = {}

    async def settle(self, partitions: Collection[int]) -> None:
        """Pay every owed effect of ``partitions`` once (errors leave it owed, logged)."""
        owing = await self._store.owing(partitions)
        self._sent_abt = {
            s.call_ref: self._sent_abt[s.call_ref] - s.abt_emitted
            for s in owing
            if s.call_ref in self._sent_abt
        }
        self._recorded &= {s.call_ref for s in owing if record_owed(s)}
        for state in owing:
            try:
                await self._settle(state)
            except Exception as exc:  # noqa: BLE001 - stays owed; the next sweep retries
                log.warning("settle failed", call_ref=state.call_ref, error=_text(exc))
        effects = await self._store.outbox(partitions)
        now = time.monotonic()
        self._sent_effects = {
            str(e.event_id): self._sent_effects[str(e.event_id)]
            for e in effects
            if str(e.event_id) in self._sent_effects
        }
        for effect in effects:
            sent = self._sent_effects.get(str(effect.event_id))
            if sent is not None and now - sent < RESEND_AFTER_S:
                continue
            try:
                await self._log.append(effect)
            except Exception as exc:  # noqa: BLE001 - stays in the outbox; retried
                log.warning("task effect failed", call_ref=effect.key, error=_text(exc))
                continue
            self._sent_effects[str(effect.event_id)] = now
            log.info("task effect", call_ref=effect.key, effect=effect.type)

    async def _settle(self, state: CallState) -> None:
        ref = state.call_ref
        if record_owed(state) and ref not in self._recorded:
            assert state.retell_call_id is not None
            await self._records.write(call_record(state))
            await self._log.append(
                Envelope.new(
                    CallRecorded(
                        call_ref=ref, retell_call_id=state.retell_call_id, store="call_records"
                    ),
                    source=PROCESSOR,
                    correlation_id=ref,
                )
            )
            self._recorded.add(ref)
        sent = self._sent_abt.get(ref, frozenset())
        for abt in abt_owed(state):
            if abt.name in sent:
                continue
            await self._log.append(
                Envelope.new(
                    abt, source=PROCESSOR, correlation_id=ref, event_id=abt.abt_id, key=ref
                )
            )
            sent = sent | {abt.name}
            self._sent_abt[ref] = sent
            log.info("abt", call_ref=ref, name=abt.name)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

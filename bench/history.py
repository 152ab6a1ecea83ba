"""The ``calls`` history the benches append: ``unit`` (one placed call: its events on
``calls`` and its ABT events, ended or one in :data:`LIVE_EVERY` live), ``foreign`` (inbound
webhooks that make the count exact), ``batched`` and ``history`` (batches of exactly N events
on ``calls``) and ``append_history`` (appended through the log client). Shared by
``bench.scale`` and ``bench.replay``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ringlog.config import Settings
from ringlog.schemas import (
    AbtEvent,
    CallDispatched,
    CallRequested,
    Envelope,
    EventModel,
    RetellCallEnded,
    RetellCallStarted,
    abt_id_for,
)
from ringlog.schemas.abt import AbtName
from ringlog.streams.producer import LogProducer

#: one call in this many is still live (dispatched and connected, not ended)
LIVE_EVERY = 200
#: envelopes per ``append_many``
APPEND_BATCH = 20_000
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
CLINIC = "+14155559876"


def _call(i: int, ref: str, phone: str, event: str) -> dict[str, Any]:
    start = int((T0 + dt.timedelta(seconds=i)).timestamp() * 1000)
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": f"retell-{i}",
        "agent_id": "agent-bench",
        "metadata": {"call_ref": ref} if ref else {},
        "from_number": CLINIC,
        "to_number": phone,
        "direction": "outbound",
        "start_timestamp": start,
        "call_status": "ongoing" if event == "call_started" else "not_connected",
    }
    if event == "call_ended":
        call |= {"end_timestamp": start + 30_000, "disconnection_reason": "dial_no_answer"}
    return call


def _abt(ref: str, name: AbtName) -> Envelope:
    abt = AbtEvent(abt_id=abt_id_for(ref, name), name=name, call_ref=ref, retell_call_id=None)
    return Envelope.new(abt, source="bench", correlation_id=ref, event_id=abt.abt_id, key=ref)


def unit(i: int) -> tuple[str, list[Envelope], list[Envelope]]:
    """Call ``i``: its ref, its events on ``calls`` and its ABT events (as already emitted)."""
    ref, phone = f"call-{i:07d}-{uuid.uuid4().hex[:6]}", f"+1415{i % 10_000_000:07d}"
    at = T0 + dt.timedelta(seconds=i)
    live = i % LIVE_EVERY == LIVE_EVERY - 1
    last = "call_started" if live else "call_ended"
    webhook = RetellCallStarted if live else RetellCallEnded
    payloads: list[EventModel] = [
        CallRequested(call_ref=ref, to_number=phone, from_number=CLINIC, agent_id="agent-bench"),
        CallDispatched(call_ref=ref, retell_call_id=f"retell-{i}", agent_id="agent-bench"),
        webhook.from_body({"event": last, "call": _call(i, ref, phone, last)}),
    ]
    calls = [Envelope.new(p, source="bench", occurred_at=at) for p in payloads]
    names: tuple[AbtName, ...] = ("voice_call_initiated",)
    if live:
        names += ("call_started",)
    return ref, calls, [_abt(ref, name) for name in names]


def foreign(i: int, events: int) -> list[Envelope]:
    """``events`` (1 or 2) webhooks of an inbound call ringlog did not place (owes nothing):
    the remainder that makes the count on ``calls`` exactly N."""
    names = ("call_started", "call_ended")[-events:]
    models = {"call_started": RetellCallStarted, "call_ended": RetellCallEnded}
    return [
        Envelope.new(
            models[name].from_body({"event": name, "call": _call(i, "", "+14155550000", name)}),
            source="bench",
        )
        for name in names
    ]


def batched(groups: Iterable[list[Envelope]]) -> Iterator[list[Envelope]]:
    """``groups`` of envelopes joined into appends of about :data:`APPEND_BATCH`."""
    batch: list[Envelope] = []
    for group in groups:
        batch += group
        if len(batch) >= APPEND_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def history(n: int, refs: list[str]) -> Iterator[list[Envelope]]:
    """Batches of envelopes holding exactly ``n`` on ``calls`` (ABT beside); refs collected."""

    def groups() -> Iterator[list[Envelope]]:
        on_calls, i = 0, 0
        while on_calls < n:
            if n - on_calls < 3:
                yield foreign(i, n - on_calls)
                on_calls = n
            else:
                ref, calls, abt = unit(i)
                refs.append(ref)
                yield calls + abt
                on_calls += len(calls)
            i += 1

    return batched(groups())


async def append_history(settings: Settings, n: int) -> tuple[list[str], float]:
    """Append the history; return the call refs and the seconds spent (building included)."""
    refs: list[str] = []
    started = time.perf_counter()
    async with LogProducer(settings.kafka) as log:
        for batch in history(n, refs):
            await log.append_many(batch)
    return refs, time.perf_counter() - started

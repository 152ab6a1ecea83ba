"""A call's state as a pure fold over its events on the ``calls`` topic.

``apply(state, envelope)`` is the only way state changes. It never raises for events it has
no use for (they leave the state as it was), ignores duplicate Retell deliveries (one per
``(call_id, event)``), and never lets a late event move a call backwards: a ``call_started``
that arrives after ``call_ended`` marks the call as having connected, but it stays ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from ringlog.schemas import Envelope
from ringlog.schemas.abt import AbtEvent
from ringlog.schemas.calls import (
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRecorded,
    CallRequested,
    CallRescheduled,
)
from ringlog.schemas.retell import RetellWebhook

#: ``pending`` → ``dispatched`` | ``failed`` (permanent) | ``cancelled``; ``None``: not ours.
DispatchStatus = Literal["pending", "dispatched", "failed", "cancelled"]
#: Retell's own view of the call, never moving backwards.
CallPhase = Literal["unknown", "registered", "ongoing", "ended", "not_connected", "error"]

_PHASE_RANK: dict[str, int] = {
    "unknown": 0,
    "registered": 1,
    "ongoing": 2,
    "ended": 3,
    "not_connected": 3,
    "error": 3,
}


class CallRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the upstream service asked for (from ``call.requested``)."""

    to_number: str
    from_number: str
    agent_id: str
    requested_at: datetime
    scheduled_at: datetime | None = None
    patient_ref: str | None = None
    task_ref: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def due_at(self) -> datetime:
        """When the call may be placed: its scheduled time, else when it was requested."""
        return self.scheduled_at or self.requested_at


class CallState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the processors know about one call ref.

    Its stored form (the worker's store, the warehouse's ``FOLD_STATE``, the read API's body)
    is :meth:`to_json` (a JSON-ready dict, like the other states' ``to_json``) and
    :meth:`encode` (those bytes): every field, in declaration order, ``None`` included; the
    sets as sorted lists; datetimes as ISO-8601 strings (``Z`` for UTC). It is the form the
    pydantic model wrote before, and :meth:`decode` reads both.
    """

    call_ref: str
    request: CallRequest | None = None
    dispatch: DispatchStatus | None = None
    dispatch_attempts: int = 0
    last_failure: str | None = None
    last_failure_at: datetime | None = None
    retell_call_id: str | None = None
    dispatched_at: datetime | None = None
    phase: CallPhase = "unknown"
    #: Retell events seen, by name (``call_started`` …): duplicates are recognised by these.
    seen: frozenset[str] = frozenset()
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    analysis: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    recorded: bool = False
    #: ABT activities already on the ``abt`` topic (folded from it).
    abt_emitted: frozenset[str] = frozenset()
    #: Events folded in, for the read API and for tests.
    events: int = 0
    #: ids of the task events already applied to this call (reschedules, deletions)
    causes: frozenset[str] = frozenset()

    @classmethod
    def decode(cls, raw: bytes | str) -> CallState:
        """The state stored as ``raw`` (JSON text from :meth:`encode`, or from the pydantic
        model before it). Unknown fields are ignored and missing ones take their defaults;
        a wrong type raises :class:`msgspec.ValidationError` (a ``ValueError``)."""
        return _DECODER.decode(raw)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallState:
        """The inverse of :meth:`to_json` (datetimes as ISO strings or ``datetime``, sets as
        lists); validated like :meth:`decode`."""
        return msgspec.convert(data, cls)

    def encode(self) -> bytes:
        """The stored form as JSON bytes: the same state always gives the same bytes
        (:meth:`to_json`'s, encoded from the Struct with its sets sorted: half the time)."""
        unordered = _sorted_sets(self)
        return _ENCODER.encode(msgspec.structs.replace(self, **unordered) if unordered else self)

    def to_json(self) -> dict[str, Any]:
        """The stored form as a JSON-ready dict (what :meth:`encode` writes, parsed): for the
        read API and the warehouse."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data.update(_sorted_sets(self))
        return data

    @property
    def connected(self) -> bool:
        """Whether Retell said the call connected (``call_started`` seen)."""
        return "call_started" in self.seen

    @property
    def analyzed(self) -> bool:
        """Whether Retell's post-call analysis arrived."""
        return "call_analyzed" in self.seen

    @property
    def finished(self) -> bool:
        """Whether the call is over (ended, failed to connect, or analysed)."""
        return _PHASE_RANK[self.phase] >= 3 or self.analyzed

    @property
    def live(self) -> bool:
        """Whether the call holds one of Retell's concurrent-call slots."""
        return self.dispatch == "dispatched" and not self.finished

    def with_abt(self, name: str) -> CallState:
        """The same state, knowing ABT ``name`` is on the log."""
        return msgspec.structs.replace(self, **_abt_seen(self, name))


#: The set fields of :class:`CallState`: stored as sorted lists (see :func:`_sorted_sets`).
_SETS = ("seen", "abt_emitted", "causes")
_DECODER = msgspec.json.Decoder(CallState)
_ENCODER = msgspec.json.Encoder()


def _sorted_sets(state: CallState) -> dict[str, list[str]]:
    """``state``'s sets of two or more as sorted lists, so the same state always reads the
    same (a set's iteration order changes from one process to the next; a set of one or none
    reads the same either way)."""
    return {name: sorted(value) for name in _SETS if len(value := getattr(state, name)) > 1}


def apply(state: CallState | None, envelope: Envelope) -> CallState:
    """Fold one event of the call ``envelope.key`` into its state (``None``: first event)."""
    current = state or CallState(call_ref=envelope.key)
    update = _changes(current, envelope)
    update["events"] = current.events + 1
    return msgspec.structs.replace(current, **update)  # one copy per event


def _changes(current: CallState, envelope: Envelope) -> dict[str, Any]:
    """The fields one event changes in ``current`` (empty: none)."""
    payload = envelope.payload
    if isinstance(payload, RetellWebhook):
        return _on_retell(current, payload)
    if isinstance(payload, CallRequested):
        return _on_requested(current, payload, envelope.occurred_at)
    if isinstance(payload, CallDispatched):
        return {
            "dispatch": "dispatched",
            "retell_call_id": payload.retell_call_id,
            "dispatch_attempts": current.dispatch_attempts + payload.attempt,
            "dispatched_at": envelope.occurred_at,
            "phase": _advance(current.phase, "registered"),
        }
    if isinstance(payload, CallDispatchFailed):
        return _on_failed(current, payload, envelope.occurred_at)
    if isinstance(payload, CallCancelled | CallRescheduled):
        return _on_task_effect(current, payload)
    if isinstance(payload, CallRecorded):
        return {"recorded": True}
    if isinstance(payload, AbtEvent):
        return _abt_seen(current, payload.name)
    return {}


def _abt_seen(state: CallState, name: str) -> dict[str, Any]:
    """The change that records ABT ``name`` as on the log."""
    return {"abt_emitted": state.abt_emitted | {name}}


def _on_task_effect(state: CallState, event: CallCancelled | CallRescheduled) -> dict[str, Any]:
    """Cancel or move a call that is still pending; once per causing task event."""
    cause = event.cause_event_id
    if cause is not None and cause in state.causes:
        return {}
    update: dict[str, Any] = {"causes": state.causes | {cause}} if cause else {}
    if state.dispatch in (None, "pending"):
        if isinstance(event, CallCancelled):
            update["dispatch"] = "cancelled"
        elif state.request is not None:
            update["request"] = msgspec.structs.replace(
                state.request, scheduled_at=event.scheduled_at
            )
    return update


def _on_requested(state: CallState, event: CallRequested, at: datetime) -> dict[str, Any]:
    if state.request is not None:  # the same ref asked twice: the first request stands
        return {}
    request = CallRequest(
        to_number=event.to_number,
        from_number=event.from_number,
        agent_id=event.agent_id,
        requested_at=at,
        scheduled_at=event.scheduled_at,
        patient_ref=event.patient_ref,
        task_ref=event.task_ref,
        metadata=dict(event.metadata),
    )
    return {
        "request": request,
        "dispatch": state.dispatch or "pending",
        "direction": state.direction or "outbound",
        "from_number": state.from_number or event.from_number,
        "to_number": state.to_number or event.to_number,
        "agent_id": state.agent_id or event.agent_id,
    }


def _on_failed(state: CallState, event: CallDispatchFailed, at: datetime) -> dict[str, Any]:
    update: dict[str, Any] = {
        "dispatch_attempts": state.dispatch_attempts + event.attempts,
        "last_failure": event.reason,
        "last_failure_at": at,
    }
    if event.permanent and state.dispatch in (None, "pending"):
        update["dispatch"] = "failed"
    return update


def _on_retell(state: CallState, event: RetellWebhook) -> dict[str, Any]:
    name = event.event
    if name in state.seen and name != "transcript_updated":
        return {}  # a duplicate delivery: the first one counted
    call = event.call
    update: dict[str, Any] = {
        "seen": state.seen | {name},
        "retell_call_id": state.retell_call_id or call.call_id,
        "direction": state.direction or call.direction,
        "from_number": state.from_number or call.from_number,
        "to_number": state.to_number or call.to_number,
        "agent_id": state.agent_id or call.agent_id,
    }
    if call.start_timestamp is not None:
        update["started_at"] = _from_ms(call.start_timestamp)
    if call.end_timestamp is not None:
        update["ended_at"] = _from_ms(call.end_timestamp)
    if call.duration_ms is not None:
        update["duration_ms"] = call.duration_ms
    if call.disconnection_reason is not None:
        update["disconnection_reason"] = call.disconnection_reason
    if call.call_analysis is not None:
        sent = event.to_wire()["call"]["call_analysis"]  # Retell's own fields kept too
        update["analysis"] = {k: v for k, v in sent.items() if v is not None}
    if call.call_cost is not None:
        update["cost"] = call.call_cost
    update["phase"] = _advance(state.phase, _phase_of(name, call.call_status))
    return update


def _phase_of(event: str, call_status: str | None) -> str:
    """Retell's phase as told by one event (its ``call_status`` when it says more)."""
    if event == "call_started":
        return "ongoing"
    if event in ("call_ended", "call_analyzed"):
        return call_status if call_status in ("not_connected", "error") else "ended"
    return call_status if call_status in _PHASE_RANK else "unknown"


def _advance(current: str, proposed: str) -> CallPhase:
    """The later of two phases; an equal rank keeps the first one told."""
    chosen = proposed if _PHASE_RANK[proposed] > _PHASE_RANK[current] else current
    return chosen  # type: ignore[return-value]


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)

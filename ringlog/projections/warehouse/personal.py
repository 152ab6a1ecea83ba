"""What the warehouse keeps of a person: no names, dates of birth or utterances by default.

:func:`withhold` removes them from an envelope before anything else of the warehouse reads it
(its ``CALL_EVENTS`` row, its fold, its ``DIALOG_TURNS`` row), unless the deployment opted in
to transcripts (``RINGLOG_WAREHOUSE_TRANSCRIPTS=true``). The CRM, the system of record, keeps
them either way. Phone numbers are a separate matter, hashed by :mod:`.phones` in both cases.

Withheld:

* ``dialog.turn`` — ``text`` (what was said);
* ``session.progressed`` — the ``slots`` (name, date of birth, …) and the last texts said;
* ``session.completed`` — the ``patient`` (name, date of birth); the appointment stays;
* ``task.field_writeback`` — the free-text ``notes``; ``task.incoming_call`` — its ``notes``;
* Retell's webhooks and ``retell.call_inbound`` — everything of the call object but an
  allow-list (:data:`RETELL_CALL_KEPT`): transcripts, dynamic variables (Retell's
  ``retell_llm_dynamic_variables`` may carry a name), recording and log URLs and fields Retell
  adds later are dropped; of ``call_analysis`` only sentiment, success and voicemail stay (the
  summary and the custom analysis data may name the patient).

Pure: copies are made without re-validation (withheld fields become ``None``, empty, or unset).
"""

from __future__ import annotations

from typing import Any, TypeVar

from ringlog.schemas import (
    CallAnalysis,
    DialogTurn,
    Envelope,
    EventModel,
    InboundCall,
    RetellCall,
    RetellCallInbound,
    RetellWebhook,
    SessionCompleted,
    SessionProgressed,
    TaskFieldWriteback,
    TaskIncomingCall,
)

#: The fields of Retell's call object the warehouse keeps (numbers already hashed).
RETELL_CALL_KEPT = frozenset(
    {
        "call_id",
        "call_type",
        "agent_id",
        "agent_version",
        "agent_name",
        "call_status",
        "direction",
        "from_number",
        "to_number",
        "transfer_destination",
        "metadata",
        "start_timestamp",
        "end_timestamp",
        "duration_ms",
        "disconnection_reason",
        "call_analysis",
        "call_cost",
        "latency",
        "llm_token_usage",
    }
)
#: The fields of Retell's post-call analysis the warehouse keeps.
ANALYSIS_KEPT = frozenset({"user_sentiment", "call_successful", "in_voicemail"})
#: The fields of the inbound-call webhook's ``call_inbound`` the warehouse keeps.
INBOUND_KEPT = frozenset({"call_id", "agent_id", "agent_version", "from_number", "to_number"})
#: Task fields written back as free text.
FREE_TEXT_FIELDS = frozenset({"notes"})

_Part = TypeVar("_Part", InboundCall, CallAnalysis)


def withhold(envelope: Envelope) -> Envelope:
    """The envelope without names, dates of birth and utterances (see the module)."""
    p = envelope.payload
    payload: EventModel = p
    if isinstance(p, DialogTurn):
        payload = p.model_copy(update={"text": None})
    elif isinstance(p, SessionProgressed):
        update: dict[str, Any] = {"slots": {}, "last_user_text": None, "last_agent_text": None}
        payload = p.model_copy(update=update)
    elif isinstance(p, SessionCompleted):
        payload = p.model_copy(update={"patient": None})
    elif isinstance(p, TaskFieldWriteback) and FREE_TEXT_FIELDS & p.fields.keys():
        fields = {k: v for k, v in p.fields.items() if k not in FREE_TEXT_FIELDS}
        payload = p.model_copy(update={"fields": fields})
    elif isinstance(p, TaskIncomingCall) and p.notes is not None:
        payload = p.model_copy(update={"notes": None})
    elif isinstance(p, RetellWebhook):
        payload = type(p).model_construct(
            _fields_set={"event", "call"}, event=p.event, call=_kept_call(p.call)
        )
    elif isinstance(p, RetellCallInbound):
        inbound = _kept(InboundCall, p.call_inbound, INBOUND_KEPT)
        payload = RetellCallInbound.model_construct(
            _fields_set={"event", "call_inbound"}, event=p.event, call_inbound=inbound
        )
    if payload is p:
        return envelope
    return envelope.model_copy(update={"payload": payload})


def _kept_call(call: RetellCall) -> RetellCall:
    kept = _given(call, RETELL_CALL_KEPT)
    analysis = kept.get("call_analysis")
    if isinstance(analysis, CallAnalysis):
        kept["call_analysis"] = _kept(CallAnalysis, analysis, ANALYSIS_KEPT)
    return RetellCall.model_construct(_fields_set=set(kept), **kept)


def _given(model: Any, names: frozenset[str]) -> dict[str, Any]:
    """The fields of ``model`` that were given (declared or extra) and are in ``names``."""
    given = {n: getattr(model, n) for n in model.model_fields_set if n in names}
    extra = model.model_extra or {}
    return given | {n: v for n, v in extra.items() if n in names}


def _kept(cls: type[_Part], model: _Part, names: frozenset[str]) -> _Part:
    kept = _given(model, names)
    return cls.model_construct(_fields_set=set(kept), **kept)

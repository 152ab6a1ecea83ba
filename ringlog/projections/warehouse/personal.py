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

Pure. ringlog's own events are copied with ``msgspec.structs.replace`` (no validation: withheld
fields become ``None`` or empty). A Retell payload is rebuilt from its body as sent
(``to_wire()``) with the withheld keys left out, through ``from_body``: the body kept beside the
typed view holds the fields Retell added (``agent_name`` …), so the body, not the view, decides
what stays, and the view of the copy follows it. The kept body is never changed: new dicts are
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from msgspec import structs

from ringlog.schemas import (
    DialogTurn,
    Envelope,
    EventModel,
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


def withhold(envelope: Envelope) -> Envelope:
    """The envelope without names, dates of birth and utterances (see the module)."""
    p = envelope.payload
    payload: EventModel = p
    if isinstance(p, DialogTurn):
        payload = structs.replace(p, text=None)
    elif isinstance(p, SessionProgressed):
        payload = structs.replace(p, slots={}, last_user_text=None, last_agent_text=None)
    elif isinstance(p, SessionCompleted):
        payload = structs.replace(p, patient=None)
    elif isinstance(p, TaskFieldWriteback) and FREE_TEXT_FIELDS & p.fields.keys():
        fields = {k: v for k, v in p.fields.items() if k not in FREE_TEXT_FIELDS}
        payload = structs.replace(p, fields=fields)
    elif isinstance(p, TaskIncomingCall) and p.notes is not None:
        payload = structs.replace(p, notes=None)
    elif isinstance(p, RetellWebhook):
        sent = p.to_wire()
        kept = {"event": p.event, "call": _kept_call(sent["call"])}
        payload = type(p).from_body(_kept(sent, kept.keys()) | kept)
    elif isinstance(p, RetellCallInbound):
        sent = p.to_wire()
        kept = {"event": p.event, "call_inbound": _kept(sent["call_inbound"], INBOUND_KEPT)}
        payload = RetellCallInbound.from_body(_kept(sent, kept.keys()) | kept)
    if payload is p:
        return envelope
    return structs.replace(envelope, payload=payload)


def _kept_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """Retell's call object as sent, but only the fields of :data:`RETELL_CALL_KEPT`, and of its
    ``call_analysis`` only those of :data:`ANALYSIS_KEPT`."""
    kept = _kept(call, RETELL_CALL_KEPT)
    analysis = kept.get("call_analysis")
    if isinstance(analysis, Mapping):
        kept["call_analysis"] = _kept(analysis, ANALYSIS_KEPT)
    return kept


def _kept(sent: Mapping[str, Any], names: AbstractSet[str]) -> dict[str, Any]:
    """A new dict of the fields of ``sent`` (a body as sent, or a part of one) that are in
    ``names``, in the order they were sent."""
    return {k: v for k, v in sent.items() if k in names}

"""Call objects of calls that are dialogs, and of inbound calls (pure).

A call played through ringlog's custom-LLM socket has no timed script: :func:`dialog_ended`
and :func:`dialog_analyzed` build its last two call objects from the dialog as it went.
An inbound call starts with Retell's inbound webhook (:func:`inbound_request`), whose answer
:func:`answered_inbound` folds into the call object.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from ringlog.simulator.dialog import Outcome
from ringlog.simulator.patient import Persona
from ringlog.simulator.script import CENTS_PER_MINUTE
from ringlog.simulator.transcripts import long_call_ended, transcript_text, utterances

# calls played through the custom-LLM socket -------------------------------------------------


def dialog_ended(
    started: Mapping[str, Any],
    *,
    outcome: Outcome,
    transcript: list[dict[str, str]],
    end_ms: int,
    two_hours: bool = False,
) -> dict[str, Any]:
    """The ``call_ended`` object of a dialog call: its transcript, duration and outcome; with
    ``two_hours``, a call that went on to Retell's longest (see :func:`long_call_ended`)."""
    lines = [(entry["role"], entry["content"]) for entry in transcript]
    if two_hours:
        return long_call_ended(started, said=lines, reason=outcome.reason)
    start_ms = int(started["start_timestamp"])
    duration_ms = max(end_ms - start_ms, 0)
    return dict(started) | {
        "call_status": "ended",
        "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms,
        "disconnection_reason": outcome.reason,
        "transcript": transcript_text(lines),
        "transcript_object": utterances(lines),
    }


def dialog_analyzed(
    ended: Mapping[str, Any], *, outcome: Outcome, persona: Persona
) -> dict[str, Any]:
    """The ``call_analyzed`` object: ``ended`` plus an analysis of what was booked, and cost."""
    p = persona
    if outcome.booked:
        summary = (
            f"{p.name} booked an appointment for {p.preferred_date} at {p.preferred_time} "
            f"at {p.site}."
        )
    else:
        summary = f"The call ended ({outcome.reason}) before an appointment was booked."
    analysis = {
        "call_summary": summary,
        "user_sentiment": "Positive" if outcome.booked else "Neutral",
        "call_successful": outcome.booked,
        "in_voicemail": False,
        "custom_analysis_data": {
            "appointment_booked": outcome.booked,
            "appointment_day": p.preferred_date if outcome.booked else None,
            "appointment_time": p.preferred_time if outcome.booked else None,
            "appointment_site": p.site if outcome.booked else None,
        },
    }
    duration_ms = int(ended.get("duration_ms") or 0)
    return dict(ended) | {
        "call_analysis": analysis,
        "call_cost": {
            "combined_cost": round(duration_ms / 60_000 * CENTS_PER_MINUTE, 4),
            "total_duration_seconds": math.ceil(duration_ms / 1000),
        },
    }


# inbound calls ---------------------------------------------------------------------------------


def inbound_request(call: Mapping[str, Any]) -> dict[str, Any]:
    """Retell's inbound-webhook body for a ringing inbound call."""
    return {
        "event": "call_inbound",
        "call_inbound": {
            "from_number": call["from_number"],
            "to_number": call["to_number"],
            "agent_id": call["agent_id"],
            "call_id": call["call_id"],
        },
    }


def answered_inbound(call: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """The call object after the inbound webhook answered ``answer`` (all fields optional).

    ``call_inbound.metadata`` becomes the call's ``metadata``, ``dynamic_variables`` its
    ``retell_llm_dynamic_variables``; ``override_agent_id``/``override_agent_version`` replace
    the agent. Values of the wrong type are ignored, as absent.
    """
    inbound = answer.get("call_inbound")
    fields: Mapping[str, Any] = inbound if isinstance(inbound, Mapping) else {}
    updated = copy.deepcopy(dict(call))
    metadata = fields.get("metadata")
    if isinstance(metadata, Mapping):
        updated["metadata"] = copy.deepcopy(dict(metadata))
    variables = fields.get("dynamic_variables")
    if isinstance(variables, Mapping):
        updated["retell_llm_dynamic_variables"] = {str(k): str(v) for k, v in variables.items()}
    agent_id = fields.get("override_agent_id")
    if isinstance(agent_id, str) and agent_id:
        updated["agent_id"] = agent_id
    version = fields.get("override_agent_version")
    if isinstance(version, int) and not isinstance(version, bool):
        updated["agent_version"] = version
    return updated

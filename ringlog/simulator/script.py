"""The timed script of one simulated call: Retell call objects and the webhooks to send.

Pure functions, no I/O. :func:`registered_call` builds the object ``create-phone-call``
answers with; :func:`plan` turns it into the ordered :class:`Delivery` list (what to post and
how long to wait before each post), shaped by the pacing and the :class:`Faults` in force.
The conversation is a short flu-shot booking; its analysis carries custom data like a real
post-call analysis would.
:func:`registered_web_call` is what ``create-web-call`` answers with. Transcripts, and the end
of a call as long as Retell allows (2 hours), are built by :mod:`ringlog.simulator.transcripts`;
calls played through ringlog's custom-LLM socket, and inbound calls, by
:mod:`ringlog.simulator.dialog_calls`.
"""

from __future__ import annotations

import copy
import math
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ringlog.config import SimulatorSettings
from ringlog.simulator.faults import Faults
from ringlog.simulator.transcripts import (
    MAX_CALL_DURATION_MS,
    long_call_ended,
    transcript_text,
    utterances,
)

#: Lifecycle rank of each event: a call object only ever moves forward through these.
STAGES: dict[str, int] = {"call_started": 1, "call_ended": 2, "call_analyzed": 3}

_ALPHABET = string.ascii_letters + string.digits
#: Cost in cents per minute of talk (Retell reports ``combined_cost`` in cents).
CENTS_PER_MINUTE = 7.0


@dataclass(frozen=True)
class Pacing:
    """How long the call rings, talks and waits for its analysis (seconds)."""

    ring_s: float
    talk_s: float
    analysis_s: float

    @classmethod
    def of(cls, settings: SimulatorSettings) -> Pacing:
        """The pacing configured in ``RINGLOG_SIMULATOR_RING_S``/``TALK_S``/``ANALYSIS_S``."""
        return cls(settings.ring_s, settings.talk_s, settings.analysis_s)


@dataclass(frozen=True)
class Delivery:
    """One webhook post: wait ``delay_s`` after the previous post (or creation), then send."""

    delay_s: float
    event: str
    body: dict[str, Any]


def new_call_id() -> str:
    """A random 32-character alphanumeric call id, like Retell's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def registered_call(
    *,
    call_id: str,
    agent_id: str,
    from_number: str,
    to_number: str,
    metadata: Mapping[str, Any] | None = None,
    dynamic_variables: Mapping[str, str] | None = None,
    agent_version: int = 1,
    direction: str = "outbound",
) -> dict[str, Any]:
    """The call object of a just-created call (``call_status: "registered"``).

    ``metadata`` and ``retell_llm_dynamic_variables`` are omitted when not given, as Retell does.
    """
    call: dict[str, Any] = {
        "call_id": call_id,
        "call_type": "phone_call",
        "agent_id": agent_id,
        "agent_version": agent_version,
        "call_status": "registered",
        "direction": direction,
        "from_number": from_number,
        "to_number": to_number,
    }
    if metadata is not None:
        call["metadata"] = copy.deepcopy(dict(metadata))
    if dynamic_variables is not None:
        call["retell_llm_dynamic_variables"] = dict(dynamic_variables)
    return call


def registered_web_call(
    *,
    call_id: str,
    agent_id: str,
    metadata: Mapping[str, Any] | None = None,
    dynamic_variables: Mapping[str, str] | None = None,
    agent_version: int = 1,
) -> dict[str, Any]:
    """The call object ``create-web-call`` answers with: ``call_type: "web_call"``, an
    ``access_token``, and no numbers or direction (``metadata`` and
    ``retell_llm_dynamic_variables`` omitted when not given)."""
    call: dict[str, Any] = {
        "call_id": call_id,
        "call_type": "web_call",
        "agent_id": agent_id,
        "agent_version": agent_version,
        "call_status": "registered",
        "access_token": f"eyJ{''.join(secrets.choice(_ALPHABET) for _ in range(40))}",
    }
    if metadata is not None:
        call["metadata"] = copy.deepcopy(dict(metadata))
    if dynamic_variables is not None:
        call["retell_llm_dynamic_variables"] = dict(dynamic_variables)
    return call


def plan(
    registered: Mapping[str, Any], *, created_ms: int, pacing: Pacing, faults: Faults
) -> list[Delivery]:
    """The webhooks for one call, in sending order, with the wait before each.

    Normally ``call_started`` after the ring, ``call_ended`` after the talk and
    ``call_analyzed`` after the analysis (plus ``faults.delay_analyzed_s``). A dial failure
    sends no ``call_started``; a mid-dialog drop (``drop_mid_dialog`` or ``drop_after_phrase``)
    ends after half the talk. ``reorder`` sends all three, last first, when the last one is
    due; ``duplicate`` sends each one twice.
    """
    timeline = _timeline(dict(registered), created_ms=created_ms, pacing=pacing, faults=faults)
    return _arranged(timeline, faults)


def not_connected_plan(
    registered: Mapping[str, Any],
    *,
    created_ms: int,
    pacing: Pacing,
    faults: Faults,
    reason: str,
) -> list[Delivery]:
    """A call that never connects, for ``reason`` (e.g. ``error_inbound_webhook``).

    Like a dial failure: no ``call_started``, then ``call_ended`` (``not_connected``) after the
    ring and ``call_analyzed`` after the analysis, arranged by ``reorder``/``duplicate``.
    """
    timeline = _not_connected(
        dict(registered), created_ms=created_ms, pacing=pacing, faults=faults, reason=reason
    )
    return _arranged(timeline, faults)


def _arranged(timeline: list[tuple[float, str, dict[str, Any]]], faults: Faults) -> list[Delivery]:
    """The deliveries of a timeline, reordered and duplicated as ``faults`` say."""
    if faults.reorder:
        last_at = timeline[-1][0]
        timeline = [(last_at, event, call) for _, event, call in reversed(timeline)]
    copies = 2 if faults.duplicate else 1
    deliveries: list[Delivery] = []
    previous_at = 0.0
    for at_s, event, call in timeline:
        for i in range(copies):
            delay = max(at_s - previous_at, 0.0) if i == 0 else 0.0
            deliveries.append(Delivery(delay, event, {"event": event, "call": copy.deepcopy(call)}))
        previous_at = at_s
    return deliveries


def _timeline(
    call: dict[str, Any], *, created_ms: int, pacing: Pacing, faults: Faults
) -> list[tuple[float, str, dict[str, Any]]]:
    """``(seconds after creation, event, call object)`` for each event, in lifecycle order."""
    name = (call.get("retell_llm_dynamic_variables") or {}).get("patient_name") or "there"
    if faults.dial_failure:
        return _not_connected(
            call, created_ms=created_ms, pacing=pacing, faults=faults, reason="dial_failed"
        )

    started_at = pacing.ring_s
    start_ms = created_ms + _ms(started_at)
    started = call | {"call_status": "ongoing", "start_timestamp": start_ms}
    if faults.drop_phrase() is not None:
        talk_s, lines, reason = pacing.talk_s / 2, _dropped_dialog(name), "user_hangup"
        analysis = _analysis(successful=False, sentiment="Neutral", summary=_DROPPED_SUMMARY)
    else:
        talk_s, lines, reason = pacing.talk_s, _booking_dialog(name), "agent_hangup"
        analysis = _analysis(successful=True, sentiment="Positive", summary=_BOOKED_SUMMARY)
    ended_at = started_at + talk_s
    duration_ms = _ms(talk_s)
    ended = started | {
        "call_status": "ended",
        "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms,
        "disconnection_reason": reason,
        "transcript": transcript_text(lines),
        "transcript_object": utterances(lines),
    }
    if faults.two_hours:
        ended = long_call_ended(started, said=lines, reason=reason)
        duration_ms = MAX_CALL_DURATION_MS
    seconds = math.ceil(duration_ms / 1000)
    analyzed = ended | {
        "call_analysis": analysis,
        "call_cost": {
            "combined_cost": round(duration_ms / 60_000 * CENTS_PER_MINUTE, 4),
            "total_duration_seconds": seconds,
        },
    }
    analyzed_at = ended_at + pacing.analysis_s + faults.delay_analyzed_s
    return [
        (started_at, "call_started", started),
        (ended_at, "call_ended", ended),
        (analyzed_at, "call_analyzed", analyzed),
    ]


def _not_connected(
    call: dict[str, Any], *, created_ms: int, pacing: Pacing, faults: Faults, reason: str
) -> list[tuple[float, str, dict[str, Any]]]:
    """call_ended (``not_connected``, ``reason``) after the ring, then a zero-cost analysis."""
    ended_at = pacing.ring_s
    ended = call | {
        "call_status": "not_connected",
        "end_timestamp": created_ms + _ms(ended_at),
        "disconnection_reason": reason,
    }
    analyzed = ended | {
        "call_analysis": {
            "call_summary": "The call did not connect.",
            "user_sentiment": "Unknown",
            "call_successful": False,
            "in_voicemail": False,
        },
        "call_cost": {"combined_cost": 0, "total_duration_seconds": 0},
    }
    analyzed_at = ended_at + pacing.analysis_s + faults.delay_analyzed_s
    return [(ended_at, "call_ended", ended), (analyzed_at, "call_analyzed", analyzed)]


_BOOKED_SUMMARY = (
    "The agent called the patient to book a flu shot. The patient confirmed their date of "
    "birth and booked Thursday at 10:30 AM."
)
_DROPPED_SUMMARY = "The agent offered flu-shot slots; the patient hung up before choosing one."


def _analysis(*, successful: bool, sentiment: str, summary: str) -> dict[str, Any]:
    """Retell's ``call_analysis`` for a connected call (custom data is always present)."""
    return {
        "call_summary": summary,
        "user_sentiment": sentiment,
        "call_successful": successful,
        "in_voicemail": False,
        "custom_analysis_data": {
            "appointment_booked": successful,
            "appointment_day": "Thursday" if successful else None,
            "appointment_time": "10:30" if successful else None,
            "date_of_birth_confirmed": successful,
        },
    }


def _booking_dialog(name: str) -> list[tuple[str, str]]:
    """A complete flu-shot booking, as ``(role, text)`` turns."""
    return [
        *_opening(name),
        ("user", "Thursday at 10:30 works."),
        ("agent", "Perfect. Before I book it, can you confirm your date of birth?"),
        ("user", "December 10th, 1985."),
        (
            "agent",
            "Thank you. You're booked for a flu shot on Thursday at 10:30 AM. "
            "Please bring your insurance card. Anything else I can help with?",
        ),
        ("user", "No, that's all. Thanks!"),
        ("agent", "You're welcome. Have a great day!"),
    ]


def _dropped_dialog(name: str) -> list[tuple[str, str]]:
    """The same call cut short: the patient leaves before picking a slot."""
    return [*_opening(name), ("user", "Oh, sorry, I have to take this, hold on")]


def _opening(name: str) -> list[tuple[str, str]]:
    return [
        (
            "agent",
            f"Hi {name}, this is Maya from Riverside Family Clinic. "
            "Do you have a minute to book your flu shot?",
        ),
        ("user", "Oh, hi. Yes, I've been meaning to do that."),
        (
            "agent",
            "Great. We have openings on Thursday at 10:30 AM or Friday at 2 PM. "
            "Which works better for you?",
        ),
    ]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)

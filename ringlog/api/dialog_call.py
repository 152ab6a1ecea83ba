"""One call's dialog: the I/O shell around the pure session and booking steps.

It opens (or resumes) the caller's session when the socket starts, turns each request into a
:func:`ringlog.sessions.conversation.hear` step, appends the step's session events and both
turns before the reply is spoken, keeps the Redis cache in step, and on hang-up records a drop
if the booking was not finished.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Literal

import structlog

from ringlog.api.deps import Services
from ringlog.dialog.model import DialogContext
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.envelope import new_event_id
from ringlog.schemas.retell import call_ref_for
from ringlog.sessions.conversation import Conversation, begin, hang_up, hear, remind
from ringlog.sessions.opening import open_call
from ringlog.sessions.state import SessionState

log = structlog.get_logger("ringlog.dialog")

SOURCE = "dialog"
Role = Literal["agent", "user"]
#: the longest a call may hold its number's session claim (a crashed process frees it then)
CLAIM_TTL = dt.timedelta(hours=2)


def caller_of(call: dict[str, Any]) -> str:
    """The patient's number: the caller on an inbound call, the callee on an outbound one."""
    if call.get("direction") == "outbound":
        return str(call.get("to_number") or "")
    return str(call.get("from_number") or "")


def call_ref_of(call_id: str, call: dict[str, Any]) -> str:
    """The call ref of the socket's call (``call_details``): :func:`call_ref_for`, the rule
    the webhooks use, so the dialog and the call's webhooks name the call alike."""
    return call_ref_for(call_id, call.get("metadata"))


class DialogCall:
    """The dialog of one call, from the begin message to the hang-up."""

    def __init__(self, services: Services, call_id: str, call: dict[str, Any]) -> None:
        self._services = services
        self._settings = services.settings
        self.call_id = call_id
        self.call_ref = call_ref_of(call_id, call)
        self.phone = caller_of(call)
        self._expiry = dt.timedelta(seconds=self._settings.dialog.session_expiry_s)
        self._session: SessionState | None = None
        self._conversation: Conversation | None = None
        self._claimed = False
        self._turns = 0

    async def begin(self) -> tuple[str, bool]:
        """Open or resume the session; append it; return the begin message and whether the
        call ends with it (a second call while the number is busy)."""
        sessions = self._services.sessions
        now = dt.datetime.now(dt.UTC)
        current = await sessions.get(self.phone)
        self._claimed = await sessions.claim(self.phone, self.call_ref, CLAIM_TTL)
        opening = open_call(
            current,
            phone=self.phone,
            call_ref=self.call_ref,
            now=now,
            expiry=self._expiry,
            busy=not self._claimed,
            new_session_id=f"ses_{new_event_id().hex}",
        )
        self._session = current
        await self._record(opening.events, now)
        step = begin(opening, self._session, phone=self.phone, call_ref=self.call_ref)
        self._conversation = step.conversation
        await self._append_turns([("agent", step.text, 0)])
        log.info("dialog begins", call_ref=self.call_ref, opening=opening.kind)
        return step.text, step.end_call

    async def answer(self, kind: str, transcript: list[Any]) -> tuple[str, bool]:
        """Reply to a request (``response_required`` or ``reminder_required``)."""
        assert self._conversation is not None, "begin() first"
        started = time.perf_counter()
        if kind == "reminder_required":
            text = remind(self._conversation)
            await self._append_turns([("agent", text, started)])
            return text, False
        utterance = last_user_words(transcript)
        step = hear(
            self._conversation,
            utterance,
            today=dt.datetime.now(dt.UTC).date(),
            new_session_id=f"ses_{new_event_id().hex}",
        )
        self._conversation = step.conversation
        now = dt.datetime.now(dt.UTC)
        await self._record(step.events, now)
        text = await self._worded(step.text, transcript)
        await self._append_turns([("user", utterance, 0), ("agent", text, started)])
        return text, step.end_call

    async def _worded(self, draft: str, transcript: list[Any]) -> str:
        """The draft, or the dialog model's wording of it when a model is configured."""
        model = self._services.dialog_model
        if model is None or self._conversation is None:
            return draft
        turns = [t for t in transcript if isinstance(t, dict)]
        context = DialogContext("booking a flu shot", self._conversation.booking.stage, turns)
        return await model.phrase(context, draft)

    async def end(self, reason: str) -> None:
        """The socket closed: record a drop if unfinished, and free the number."""
        if self._conversation is None:
            return
        now = dt.datetime.now(dt.UTC)
        try:
            events = hang_up(self._conversation, reason=reason, now=now, expiry=self._expiry)
            await self._record(events, now)
        finally:
            if self._claimed:
                await self._services.sessions.release(self.phone, self.call_ref)
        log.info("dialog ends", call_ref=self.call_ref, reason=reason, mode=self._conversation.mode)

    async def _record(self, events: tuple[EventModel, ...], now: dt.datetime) -> None:
        """Append session events (acks=all), then fold them into the cached session."""
        if not events:
            return
        envelopes = [
            Envelope.new(event, source=SOURCE, correlation_id=self.call_ref) for event in events
        ]
        await self._services.log.append_many(envelopes)
        self._session = await self._services.sessions.apply(self._session, envelopes, now)

    async def _append_turns(self, turns: list[tuple[Role, str, float]]) -> None:
        """Append dialog turns; ``started`` (perf counter, 0 if none) gives the latency."""
        assert self._conversation is not None
        envelopes = []
        for role, text, started in turns:
            latency = (time.perf_counter() - started) * 1000 if started else None
            turn = DialogTurn(
                call_ref=self.call_ref,
                call_id=self.call_id,
                session_id=self._conversation.session_id,
                turn_index=self._turns,
                role=role,
                text=text,
                stage=self._conversation.booking.stage,
                latency_ms=latency,
            )
            self._turns += 1
            envelopes.append(Envelope.new(turn, source=SOURCE, correlation_id=self.call_ref))
        await self._services.log.append_many(envelopes)


def last_user_words(transcript: list[Any]) -> str:
    """What the user said since the agent last spoke (consecutive trailing user entries)."""
    words: list[str] = []
    for entry in reversed(transcript):
        if not isinstance(entry, dict):
            continue
        if entry.get("role") != "user":
            break
        words.append(str(entry.get("content") or ""))
    return " ".join(reversed(words)).strip()

"""One call's dialog: the I/O shell around the pure session and booking steps.

It opens (or resumes) the caller's session when the socket starts, works each request out with
:func:`ringlog.sessions.conversation.hear` from the conversation as it stood after the last
reply the caller heard, and records a reply (its session events, then both turns) once it
*stands*: when a later transcript shows the agent spoke after the caller's words. A
reply superseded before that records nothing (see :class:`ringlog.sessions.conversation.Ledger`);
a reply that ends the call or closes the session is recorded before it is said.
It keeps the Redis cache in step, and on hang-up records a drop if the booking was not finished.

A socket of the same call that comes back (Retell's ``auto_reconnect``) continues the same
:class:`DialogCall` when this process still has it (:class:`LiveCalls`); the lost socket's
drop, if recorded, is undone by ``session.resumed``. A call without a caller number (a web
call) has a dialog without a session: no claim, no session events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Literal

import structlog

from ringlog.api.deps import Services
from ringlog.calls.known import KnownCall
from ringlog.dialog.model import DialogContext
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.envelope import new_event_id
from ringlog.sessions.conversation import (
    Answer,
    Conversation,
    Ledger,
    Step,
    Transcript,
    answer_for,
    begin,
    begin_without_session,
    busy,
    caller_words,
    hang_up,
    hear,
    hung_up,
    remind,
    sent,
    settle,
    stand,
    stands_at_once,
    turns_of,
)
from ringlog.sessions.opening import open_call, reopened
from ringlog.sessions.state import SessionState

log = structlog.get_logger("ringlog.dialog")

SOURCE = "dialog"
Role = Literal["agent", "user"]
#: how long a call whose socket was lost is kept for the socket to come back
REJOIN_WINDOW_S = 600.0
#: at most this many lost calls are kept (the oldest are forgotten first)
MAX_LOST_CALLS = 10_000


class DialogCall:
    """The dialog of one call, from the begin message to the hang-up, across its sockets.

    ``call`` is the call as a trusted source announced it (:mod:`ringlog.calls.known`): its
    number, direction and ref, never those the socket's ``call_details`` claim.
    ``in_progress`` says the socket joins a conversation already under way (no greeting).
    """

    def __init__(self, services: Services, call: KnownCall, *, in_progress: bool = False) -> None:
        self._services = services
        self._settings = services.settings
        self.call_id = call.call_id
        self.call_ref = call.call_ref
        self.phone = call.phone
        self.in_progress = in_progress
        self._expiry = dt.timedelta(seconds=self._settings.dialog.session_expiry_s)
        #: a number's claim lasts as long as the longest call, at most
        self._claim_ttl = dt.timedelta(seconds=self._settings.dialog.max_call_s)
        self._session: SessionState | None = None
        self._ledger: Ledger | None = None
        self._claimed = False
        #: the socket now serving the call (each socket that joins takes the next number)
        self.socket = 0
        #: the last socket ended; ``lost`` if it was not a normal close
        self.ended = False
        self.lost = False
        self._dropped = False
        self._lock = asyncio.Lock()

    @property
    def begun(self) -> bool:
        """Whether the call's begin message was worked out (its opening is recorded)."""
        return self._ledger is not None

    @property
    def conversation(self) -> Conversation:
        """Where the dialog stands (after the last reply that stood)."""
        assert self._ledger is not None, "begin() first"
        return self._ledger.conversation

    def attach(self) -> int:
        """A socket starts serving the call; its number (an older socket's end is ignored)."""
        self.socket += 1
        return self.socket

    async def begin(self) -> tuple[str, bool]:
        """Open or resume the session; append it; return the begin message and whether the
        call ends with it (a second call while the number is busy). A call without a number
        gets a dialog without a session; a call in progress gets ``""`` (no greeting), and no
        session unless the number's open session already counts it. A start that fails gives
        the number's claim back."""
        async with self._lock:
            if not self.phone:
                return await self._without_session()
            sessions = self._services.sessions
            now = dt.datetime.now(dt.UTC)
            current = await sessions.get(self.phone)
            self._claimed = await sessions.claim(self.phone, self.call_ref, self._claim_ttl)
            try:
                return await self._open(current, now)
            except BaseException:
                await self._release()
                raise

    async def _open(self, current: SessionState | None, now: dt.datetime) -> tuple[str, bool]:
        """Open or resume the number's session (claimed, or found busy) and record it."""
        opening = open_call(
            current,
            phone=self.phone,
            call_ref=self.call_ref,
            now=now,
            expiry=self._expiry,
            busy=not self._claimed,
            new_session_id=f"ses_{new_event_id().hex}",
        )
        if self.in_progress and opening.kind != "reconnect":
            await self._release()  # nothing to go on from: the call continues without one
            return await self._without_session()
        self._session = current
        await self._record(opening.events, now)
        step = begin(opening, self._session, phone=self.phone, call_ref=self.call_ref)
        if opening.kind == "reconnect":
            self._ledger = Ledger(step.conversation, recorded=None)
        else:
            self._ledger = Ledger(step.conversation)
            await self._append_turns([("agent", step.text, 0)], step.conversation)
        log.info("dialog begins", call_ref=self.call_ref, opening=opening.kind)
        return step.text, step.end_call

    async def _without_session(self) -> tuple[str, bool]:
        """Begin a dialog with no session (greeted unless the call is in progress)."""
        step = begin_without_session(self.call_ref)
        if self.in_progress:
            self._ledger = Ledger(step.conversation, recorded=None)
            return "", False
        self._ledger = Ledger(step.conversation)
        await self._append_turns([("agent", step.text, 0)], step.conversation)
        log.info("dialog begins", call_ref=self.call_ref, opening="no session")
        return step.text, False

    async def _release(self) -> None:
        """Give the number back if this call holds it."""
        if self._claimed:
            self._claimed = False
            await self._services.sessions.release(self.phone, self.call_ref)

    async def rejoin(self) -> tuple[str, bool]:
        """The call's socket came back: go on where the call stands, saying nothing (``""``).

        If the lost socket already ended the call here, the number is claimed again and a
        recorded drop is undone (``session.resumed``); if another call took the number
        meanwhile, the caller is told it is busy and the call ends.
        """
        async with self._lock:
            assert self._ledger is not None, "begin() first"
            if not self.ended:
                return "", False
            self.ended = self.lost = False
            if not self.phone:
                return "", False
            self._claimed = await self._services.sessions.claim(
                self.phone, self.call_ref, self._claim_ttl
            )
            if not self._claimed:
                step = busy(self.phone, self.call_ref)
                self._ledger = Ledger(step.conversation)
                return step.text, True
            if self._dropped and self._session is not None:
                self._dropped = False
                await self._record(
                    (reopened(self._session, self.call_ref),), dt.datetime.now(dt.UTC)
                )
            log.info("dialog rejoined", call_ref=self.call_ref)
            return "", False

    async def update(self, transcript: Transcript) -> None:
        """A transcript update (``update_only``): record the open reply if it shows it heard."""
        async with self._lock:
            assert self._ledger is not None, "begin() first"
            before = self._ledger
            self._ledger, standing = settle(before, transcript, newer_request=False)
            if standing is not None:
                await self._commit(before, standing)

    async def answer(
        self,
        response_id: int,
        kind: str,
        transcript: Transcript,
        superseded: Callable[[], bool],
    ) -> Answer | None:
        """Work out the reply to a request (``response_required`` or ``reminder_required``).

        The open reply is settled against the request's transcript first: recorded if it was
        heard, else dropped. The new reply is worked out from the conversation as it stands,
        with the caller's words as this transcript gives them. ``None`` when ``superseded()``
        says a newer request came while it was worked out (nothing of it is recorded). A
        reply that ends the call is recorded before it is returned.
        """
        async with self._lock:
            assert self._ledger is not None, "begin() first"
            before = self._ledger
            self._ledger, standing = settle(before, transcript, newer_request=True)
            if standing is not None:
                await self._commit(before, standing)
            started = time.perf_counter()
            conversation = self._ledger.conversation
            if kind == "reminder_required":
                heard = ""
                step = Step(conversation, remind(conversation))
            else:
                heard = caller_words(transcript)
                step = hear(
                    conversation,
                    heard,
                    today=dt.datetime.now(dt.UTC).date(),
                    new_session_id=f"ses_{new_event_id().hex}",
                )
            text = await self._worded(step, transcript)
            if superseded():
                return None
            self._ledger, reply = answer_for(
                self._ledger,
                transcript,
                response_id=response_id,
                step=step,
                text=text,
                heard=heard,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
            if stands_at_once(step):  # on the log before it is said
                before = self._ledger
                self._ledger = stand(before, reply)
                await self._commit(before, reply)
            return reply

    def sent(self, answer: Answer) -> None:
        """``answer``'s last chunk went out."""
        if self._ledger is not None:
            self._ledger = sent(self._ledger, answer)

    async def _worded(self, step: Step, transcript: Transcript) -> str:
        """The draft, or the dialog model's wording of it when a model is configured."""
        model = self._services.dialog_model
        if model is None or not step.text:
            return step.text
        turns = [t for t in transcript if isinstance(t, dict)]
        context = DialogContext("booking a flu shot", step.conversation.booking.stage, turns)
        return await model.phrase(context, step.text)

    async def end(self, reason: str, *, socket: int, lost: bool = False) -> None:
        """The socket ``socket`` closed: record a drop if unfinished, and free the number.

        On a normal close the open reply stands if it was sent. A ``lost`` socket (closed
        abnormally: Retell may open it again) keeps the open reply for the next transcript to
        settle. Nothing happens if a newer socket serves the call by now.
        """
        if socket != self.socket:
            return
        async with self._lock:
            try:
                if self._ledger is None or self.ended:
                    return
                self.ended, self.lost = True, lost
                now = dt.datetime.now(dt.UTC)
                if not lost:
                    before = self._ledger
                    self._ledger, standing = hung_up(before)
                    if standing is not None:
                        await self._commit(before, standing)
                conversation = self._ledger.conversation
                events = hang_up(conversation, reason=reason, now=now, expiry=self._expiry)
                await self._record(events, now)
                self._dropped = bool(events)
                log.info(
                    "dialog ends", call_ref=self.call_ref, reason=reason, mode=conversation.mode
                )
            finally:
                await self._release()

    async def _commit(self, before: Ledger, answer: Answer) -> None:
        """Record a reply that stands: its session events, then its turns."""
        conversation = answer.step.conversation
        await self._record(answer.step.events, dt.datetime.now(dt.UTC))
        await self._append_turns(
            turns_of(before, answer),
            conversation,
            response_id=answer.response_id,
            latency_ms=answer.latency_ms,
        )

    async def _record(self, events: tuple[EventModel, ...], now: dt.datetime) -> None:
        """Append session events (acks=all), then fold them into the cached session."""
        if not events:
            return
        envelopes = [
            Envelope.new(event, source=SOURCE, correlation_id=self.call_ref) for event in events
        ]
        await self._services.log.append_many(envelopes)
        self._session = await self._services.sessions.apply(self._session, envelopes, now)

    async def _append_turns(
        self,
        turns: list[tuple[Role, str, int]],
        conversation: Conversation,
        *,
        response_id: int | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Append dialog turns ``(role, text, turn index)``; the agent's carry the latency."""
        envelopes = []
        for role, text, index in turns:
            turn = DialogTurn(
                call_ref=self.call_ref,
                call_id=self.call_id,
                session_id=conversation.session_id,
                turn_index=index,
                role=role,
                text=text,
                response_id=response_id,
                stage=conversation.booking.stage,
                latency_ms=latency_ms if role == "agent" else None,
            )
            envelopes.append(Envelope.new(turn, source=SOURCE, correlation_id=self.call_ref))
        await self._services.log.append_many(envelopes)


class LiveCalls:
    """The calls this process serves, by Retell call id, and those whose socket was lost
    lately (kept :data:`REJOIN_WINDOW_S` for the socket to come back)."""

    def __init__(self) -> None:
        self._calls: dict[str, DialogCall] = {}
        self._lost_at: dict[str, float] = {}

    def get(self, call_id: str) -> DialogCall | None:
        """The call, if this process serves it or lost its socket lately."""
        self._forget_old(time.monotonic())
        return self._calls.get(call_id)

    def add(self, dialog: DialogCall) -> None:
        """Serve ``dialog`` (replacing a call of the same id)."""
        self._calls[dialog.call_id] = dialog
        self._lost_at.pop(dialog.call_id, None)

    def closed(self, dialog: DialogCall, socket: int) -> None:
        """``dialog``'s socket ``socket`` closed: keep it if it was lost, else forget it."""
        if socket != dialog.socket or self._calls.get(dialog.call_id) is not dialog:
            return  # a newer socket serves it
        if dialog.lost:
            self._lost_at.pop(dialog.call_id, None)  # kept in the order they were lost
            self._lost_at[dialog.call_id] = time.monotonic()
            self._forget_old(time.monotonic())
        else:
            del self._calls[dialog.call_id]

    def _forget_old(self, now: float) -> None:
        while self._lost_at:
            call_id, at = next(iter(self._lost_at.items()))
            if now - at < REJOIN_WINDOW_S and len(self._lost_at) <= MAX_LOST_CALLS:
                return
            del self._lost_at[call_id]
            dialog = self._calls.get(call_id)
            if dialog is not None and dialog.ended:
                del self._calls[call_id]

"""``WS /v1/llm/{call_id}``: the dialog over Retell's custom-LLM socket.

Retell connects when the call starts. The socket carries no signature, so it is served only for
a call a trusted source announced (:mod:`ringlog.api.dialog_gate`): any other call id is closed
with 1008 before anything is sent, spoken, appended or claimed. The caller's number, the
direction and the call ref come from that record; ``call_details`` that disagree are logged
(field names only) and ignored. ringlog sends ``config`` (call details on, auto-reconnect on),
opens or resumes the caller's session, and speaks the begin message as response 0.
``ping_pong`` is echoed; a frame that is not protocol JSON is logged and ignored.

Sockets are bounded: at most ``dialog.max_sockets_per_address`` open per client address (more
are closed with 1013), a socket silent for ``dialog.idle_timeout_s`` is closed (1000, "idle"),
and a frame over ``dialog.max_frame_bytes`` closes it (1009). Every way a socket ends releases
the number's claim.

Requests (``response_required`` / ``reminder_required``) are answered with streamed
``response`` chunks (``content_complete`` on the last, ``end_call`` when the booking is done,
then the socket is closed with 1000). Only the newest request is worked on: an older one still
waiting is skipped, and one a newer request supersedes while it is worked out or spoken says
no more and records nothing. Each request's transcript is the truth: a reply is recorded only
once a later transcript (a request, or an ``update_only``) shows the agent spoke after it (see
:mod:`ringlog.api.dialog_call`).

``update_only`` frames are used for two things: their transcript records the open reply once
it shows it heard, and their ``turntaking`` holds a reply back while the caller is mid-turn
(``user_turn`` after the request; released by ``agent_turn``, a newer request, or after
:data:`TURN_HOLD_S`). Their ``transcript_with_tool_calls`` is ignored.

A socket for a call this process is serving, or lost lately, is that call coming back
(``auto_reconnect``): it goes on where the call stands, with ``""`` as the begin message, whether
or not Retell sends ``call_details`` again. A socket whose first frame is a request or a
transcript (a call in progress that another process served) is served without a session
unless its ``call_details`` come first. Web calls (no numbers) get a dialog without a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from ringlog.api.deps import Services
from ringlog.api.dialog_call import DialogCall, LiveCalls
from ringlog.calls.known import KnownCall, disagreements
from ringlog.errors import RetryableError

router = APIRouter(tags=["dialog"])
log = structlog.get_logger("ringlog.dialog")

#: how long to wait for Retell's ``call_details`` after sending ``config``
DETAILS_TIMEOUT_S = 5.0
#: how long the socket's call may take to look up (the directory, then Retell's get-call)
LOOKUP_TIMEOUT_S = 5.0
#: the longest a reply waits for a caller who is mid-turn (``turntaking: user_turn``)
TURN_HOLD_S = 2.0
#: close codes after which the call is over (anything else may be Retell reconnecting)
NORMAL_CLOSES = (1000, 1001)
_REQUESTS = ("response_required", "reminder_required")


def live_calls(app: Any) -> LiveCalls:
    """The app's :class:`LiveCalls` (made on first use)."""
    state = app.state
    calls: LiveCalls | None = getattr(state, "dialog_calls", None)
    if calls is None:
        calls = state.dialog_calls = LiveCalls()
    return calls


@router.websocket("/v1/llm/{call_id}")
async def llm_socket(websocket: WebSocket, call_id: str) -> None:
    """Serve one call's dialog until Retell closes the socket; refuse a call nobody announced
    (1008) and a socket over the per-address cap (1013), saying nothing."""
    services: Services = websocket.app.state.services
    address = websocket.client.host if websocket.client else ""
    await websocket.accept()
    with services.sockets.held(address) as admitted:
        if not admitted:
            log.warning("too many dialog sockets from one address; refused")
            await websocket.close(code=1013)
            return
        try:
            known = await asyncio.wait_for(services.calls.lookup(call_id), LOOKUP_TIMEOUT_S)
        except (TimeoutError, RetryableError, RedisError) as exc:
            log.warning("could not check the socket's call; refused", error=type(exc).__name__)
            await websocket.close(code=1011)
            return
        if known is None:
            log.warning("socket for a call no trusted source announced; refused")
            await websocket.close(code=1008)
            return
        await _serve_call(websocket, services, known)


async def _serve_call(websocket: WebSocket, services: Services, known: KnownCall) -> None:
    """Begin (or go on with) the known call's dialog and serve it until the socket closes."""
    calls = live_calls(websocket.app)
    limits = _Limits.of(services)
    await _send(websocket, {"response_type": "config", "config": _CONFIG})
    early: list[dict[str, Any]] = []
    dialog = calls.get(known.call_id)
    if dialog is None:
        try:
            details, early = await asyncio.wait_for(
                _call_details(websocket, limits), DETAILS_TIMEOUT_S
            )
        except (TimeoutError, WebSocketDisconnect, _FrameTooLarge):
            log.warning("no call details; closing", call_ref=known.call_ref)
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1011)
            return
        if details is not None and (differing := disagreements(known, details)):
            log.warning(
                "call_details differ from the announced call; the record wins",
                call_ref=known.call_ref,
                fields=differing,
            )
        dialog = DialogCall(services, known, in_progress=bool(early))
        calls.add(dialog)
        socket = dialog.attach()
        opening = dialog.begin
    else:
        log.info("the call's socket came back", call_ref=dialog.call_ref)
        calls.add(dialog)
        socket = dialog.attach()
        opening = dialog.rejoin if dialog.begun else dialog.begin
    reason, lost = "socket_closed", False
    try:
        text, end_call = await opening()
        await _send_text(websocket, 0, text, end_call=end_call)
        if end_call:
            await websocket.close(code=1000)
        else:
            await _serve(websocket, dialog, early, limits)
    except WebSocketDisconnect as exc:
        lost = exc.code not in NORMAL_CLOSES
        reason = "socket_closed" if not lost else f"socket_closed_{exc.code}"
    except TimeoutError:
        reason = "idle_timeout"
        log.info("dialog socket idle; closing", call_ref=dialog.call_ref)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1000, reason="idle")
    except _FrameTooLarge:
        reason = "frame_too_large"
        log.warning("frame over the limit; closing", call_ref=dialog.call_ref)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1009)
    except Exception:
        lost, reason = True, "socket_error"
        log.exception("dialog failed; closing", call_ref=dialog.call_ref)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1011)
    finally:
        await dialog.end(reason, socket=socket, lost=lost)
        calls.closed(dialog, socket)


_CONFIG = {"auto_reconnect": True, "call_details": True}


class _FrameTooLarge(Exception):
    """A frame over ``dialog.max_frame_bytes`` came."""


@dataclass(frozen=True)
class _Limits:
    """What one socket may do: the longest silence, the largest frame."""

    idle_s: float
    max_frame_bytes: int

    @classmethod
    def of(cls, services: Services) -> _Limits:
        dialog = services.settings.dialog
        return cls(dialog.idle_timeout_s, dialog.max_frame_bytes)


async def _call_details(
    websocket: WebSocket, limits: _Limits
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Read frames until ``call_details`` (the call, no frames), or until a request or a
    non-empty transcript shows a call in progress (``None`` and that frame); echo pings."""
    while True:
        frame = await _receive(websocket, limits)
        if frame is None:
            continue
        kind = frame.get("interaction_type")
        if kind == "ping_pong":
            await _pong(websocket, frame)
        elif kind == "call_details" and isinstance(frame.get("call"), dict):
            call: dict[str, Any] = frame["call"]
            return call, []
        elif kind in _REQUESTS or (kind == "update_only" and frame.get("transcript")):
            return None, [frame]


class _Turns:
    """What the receive loop has seen, for the worker: the newest request id, whose turn
    Retell says it is, and a wake-up for replies held back."""

    def __init__(self) -> None:
        self.latest = 0
        self.user_speaking = False
        self._changed = asyncio.Event()

    def request(self, response_id: int) -> None:
        self.latest = max(self.latest, response_id)
        self.user_speaking = False  # Retell asks for a reply: the caller's turn is over
        self._changed.set()

    def turntaking(self, value: Any) -> None:
        if value in ("user_turn", "agent_turn"):
            self.user_speaking = value == "user_turn"
            self._changed.set()

    def newer_than(self, response_id: int) -> bool:
        """Whether a newer request than ``response_id`` came."""
        return self.latest > response_id

    async def hold(self, response_id: int) -> None:
        """Return once the caller is not mid-turn, or a newer request came."""
        while self.user_speaking and not self.newer_than(response_id):
            self._changed.clear()
            await self._changed.wait()


async def _serve(
    websocket: WebSocket, dialog: DialogCall, early: list[dict[str, Any]], limits: _Limits
) -> None:
    """Answer requests until the socket closes; only the newest request is worked on. Raises
    ``TimeoutError`` when no frame came for ``limits.idle_s``, :class:`_FrameTooLarge` for a
    frame over the limit."""
    turns = _Turns()
    pending: asyncio.Queue[tuple[int, str, list[Any]]] = asyncio.Queue()

    async def answer() -> None:
        while True:
            response_id, kind, transcript = await pending.get()
            if kind == "update_only":
                await dialog.update(transcript)
                continue
            if response_id < turns.latest:
                continue  # superseded before we started
            superseded = functools.partial(turns.newer_than, response_id)
            reply = await dialog.answer(response_id, kind, transcript, superseded=superseded)
            if reply is None:
                continue  # superseded while we worked: say nothing, record nothing
            if turns.user_speaking:  # the caller went on talking: wait for the turn
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turns.hold(response_id), TURN_HOLD_S)
            if superseded():
                continue
            if await _send_text(
                websocket,
                response_id,
                reply.text,
                end_call=reply.step.end_call,
                latest=lambda: turns.latest,
            ):
                dialog.sent(reply)
            if reply.step.end_call:
                await websocket.close(code=1000)  # a normal end: Retell hangs up after speaking
                return

    def take(frame: dict[str, Any]) -> None:
        kind = frame.get("interaction_type")
        transcript = frame.get("transcript")
        if kind == "update_only":
            turns.turntaking(frame.get("turntaking"))
            if isinstance(transcript, list):
                pending.put_nowait((0, "update_only", transcript))
        elif kind in _REQUESTS:
            response_id = frame.get("response_id")
            if not isinstance(response_id, int) or not isinstance(transcript, list):
                log.warning("request without response_id or transcript", call_id=dialog.call_id)
                return
            turns.request(response_id)
            pending.put_nowait((response_id, str(kind), transcript))

    for first in early:
        take(first)
    worker = asyncio.create_task(answer(), name=f"dialog {dialog.call_id}")
    receiving: asyncio.Future[dict[str, Any] | None] | None = None
    try:
        while True:
            receiving = asyncio.ensure_future(_receive(websocket, limits))
            await asyncio.wait({receiving, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                worker.result()  # a crash surfaces here
                return  # the call ended: end_call sent and the socket closed
            frame = receiving.result()
            if frame is None:
                continue
            if frame.get("interaction_type") == "ping_pong":
                await _pong(websocket, frame)
            else:
                take(frame)
    finally:
        # a receive still under way when the call ended ends with the socket's close
        # (WebSocketDisconnect, even once cancelled): collected here, not left for asyncio to
        # report as an error; the worker's own failure has surfaced above
        left = [task for task in (receiving, worker) if task is not None]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)


async def _receive(websocket: WebSocket, limits: _Limits) -> dict[str, Any] | None:
    """The next frame as a dict, or None for a frame that is not protocol JSON (logged).
    ``TimeoutError`` when none comes within ``limits.idle_s``; :class:`_FrameTooLarge` for one
    over ``limits.max_frame_bytes`` (uvicorn refuses larger ones before they are read when
    served with :func:`ringlog.api.app.server_options`)."""
    text = await asyncio.wait_for(websocket.receive_text(), limits.idle_s)
    if len(text) * 4 > limits.max_frame_bytes and len(text.encode()) > limits.max_frame_bytes:
        raise _FrameTooLarge
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        log.warning("ignored a frame that is not JSON", size=len(text))
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("interaction_type"), str):
        log.warning("ignored a frame without interaction_type")
        return None
    return frame


async def _pong(websocket: WebSocket, ping: dict[str, Any]) -> None:
    await _send(websocket, {"response_type": "ping_pong", "timestamp": ping.get("timestamp")})


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    await websocket.send_text(orjson.dumps(message).decode())


async def _send_text(
    websocket: WebSocket,
    response_id: int,
    text: str,
    *,
    end_call: bool = False,
    latest: Callable[[], int] | None = None,
) -> bool:
    """Stream ``text`` sentence by sentence; stop if a newer request supersedes this one.
    Whether the last chunk (``content_complete``) went out."""
    chunks = _sentences(text)
    for index, chunk in enumerate(chunks):
        if latest is not None and latest() > response_id:
            return False
        last = index == len(chunks) - 1
        message: dict[str, Any] = {
            "response_type": "response",
            "response_id": response_id,
            "content": chunk,
            "content_complete": last,
        }
        if last and end_call:
            message["end_call"] = True
        await _send(websocket, message)
    return True


def _sentences(text: str) -> list[str]:
    """Split into sentence-sized chunks (each keeps its trailing space), at least one."""
    chunks: list[str] = []
    start = 0
    for index, char in enumerate(text):
        if char in ".?!" and (index + 1 == len(text) or text[index + 1] == " "):
            chunks.append(text[start : index + 2])
            start = index + 2
    if start < len(text):
        chunks.append(text[start:])
    return chunks or [""]

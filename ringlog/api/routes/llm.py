"""``WS /v1/llm/{call_id}``: the dialog over Retell's custom-LLM socket.

Retell connects when the call starts. ringlog sends ``config`` (call details on), learns the
caller from ``call_details``, opens or resumes the caller's session, and speaks the begin
message as response 0. Every ``response_required`` / ``reminder_required`` is answered with
streamed ``response`` chunks (``content_complete`` on the last, ``end_call`` when the booking
is done); work for a ``response_id`` that a newer request superseded is dropped. ``ping_pong``
is echoed. A frame that is not protocol JSON is logged and ignored. After ``end_call`` the socket
is closed with 1000. Every turn is appended to
``dialog`` and every session change to ``sessions`` before the words are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ringlog.api.deps import Services
from ringlog.api.dialog_call import DialogCall

router = APIRouter(tags=["dialog"])
log = structlog.get_logger("ringlog.dialog")

#: how long to wait for Retell's ``call_details`` after sending ``config``
DETAILS_TIMEOUT_S = 5.0


@router.websocket("/v1/llm/{call_id}")
async def llm_socket(websocket: WebSocket, call_id: str) -> None:
    """Serve one call's dialog until Retell closes the socket."""
    services: Services = websocket.app.state.services
    await websocket.accept()
    await _send(websocket, {"response_type": "config", "config": _CONFIG})
    try:
        call = await asyncio.wait_for(_call_details(websocket), DETAILS_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect):
        log.warning("no call details; closing", call_id=call_id)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1011)
        return
    dialog = DialogCall(services, call_id, call)
    reason = "socket_closed"
    try:
        text, end_call = await dialog.begin()
        await _send_text(websocket, 0, text, end_call=end_call)
        if end_call:
            await websocket.close(code=1000)
        else:
            await _serve(websocket, dialog)
    except WebSocketDisconnect as exc:
        reason = "socket_closed" if exc.code in (1000, 1001) else f"socket_closed_{exc.code}"
    finally:
        await dialog.end(reason)


_CONFIG = {"auto_reconnect": True, "call_details": True}


async def _call_details(websocket: WebSocket) -> dict[str, Any]:
    """Read frames until ``call_details``; echo pings on the way."""
    while True:
        frame = await _receive(websocket)
        if frame is None:
            continue
        kind = frame.get("interaction_type")
        if kind == "ping_pong":
            await _pong(websocket, frame)
        elif kind == "call_details" and isinstance(frame.get("call"), dict):
            call: dict[str, Any] = frame["call"]
            return call


async def _serve(websocket: WebSocket, dialog: DialogCall) -> None:
    """Answer requests until the socket closes; only the newest request is worked on."""
    latest = 0
    pending: asyncio.Queue[tuple[int, str, list[Any]]] = asyncio.Queue()

    async def answer() -> None:
        while True:
            response_id, kind, transcript = await pending.get()
            if response_id < latest:
                continue  # superseded before we started
            text, end_call = await dialog.answer(kind, transcript)
            if response_id < latest:
                continue  # superseded while we worked: say nothing
            await _send_text(websocket, response_id, text, end_call=end_call, latest=lambda: latest)
            if end_call:
                await websocket.close(code=1000)  # a normal end: Retell hangs up after speaking
                return

    worker = asyncio.create_task(answer(), name=f"dialog {dialog.call_id}")
    try:
        while True:
            receiving = asyncio.ensure_future(_receive(websocket))
            await asyncio.wait({receiving, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                receiving.cancel()
                worker.result()  # a crash surfaces here
                return  # the call ended: end_call sent and the socket closed
            frame = receiving.result()
            if frame is None:
                continue
            kind = frame.get("interaction_type")
            if kind == "ping_pong":
                await _pong(websocket, frame)
            elif kind in ("response_required", "reminder_required"):
                response_id = frame.get("response_id")
                transcript = frame.get("transcript")
                if not isinstance(response_id, int) or not isinstance(transcript, list):
                    log.warning("request without response_id or transcript", call_id=dialog.call_id)
                    continue
                latest = max(latest, response_id)
                pending.put_nowait((response_id, str(kind), transcript))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def _receive(websocket: WebSocket) -> dict[str, Any] | None:
    """The next frame as a dict, or None for a frame that is not protocol JSON (logged)."""
    text = await websocket.receive_text()
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
    latest: Any = None,
) -> None:
    """Stream ``text`` sentence by sentence; stop if a newer request supersedes this one."""
    chunks = _sentences(text)
    for index, chunk in enumerate(chunks):
        if latest is not None and latest() > response_id:
            return
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

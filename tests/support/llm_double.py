"""A stand-in for ringlog's side of a Retell call, for testing the simulator's patient.

:class:`LlmDouble` is one ASGI app with three parts:

* ``WS /llm/{call_id}``: a custom-LLM server. It sends ``config`` (``call_details: true``),
  waits for ``call_details``, then asks :data:`QUESTIONS` in order (the contract phrases),
  each streamed in two chunks: the first as the begin message (``response_id`` 0), the next
  ones as answers to ``response_required`` 1, 2, …. Once "shall i book" is answered it says
  :data:`GOODBYE` with ``end_call: true`` and waits for the simulator to close the socket.
  It echoes every ``ping_pong``. With ``close_code`` set it closes the socket itself with that
  code right after the begin message.
* ``POST /hook``: a webhook receiver that checks every signature with ringlog's ``verify``.
* ``POST /hook/inbound``: Retell's inbound webhook, answering ``inbound_answer`` (or
  ``inbound_status`` with no body when that is not 200).

Everything received is recorded, in arrival order, for the tests to read (the app runs in a
uvicorn thread; the records are only appended to).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ringlog.api.signature import HEADER, Verdict, verify

GREETING = "Hello {name}, this is Riverside Family Clinic."
QUESTIONS: tuple[str, ...] = (
    "Can I have your full name, please?",
    "Thank you. What is your date of birth?",
    "Which day would you like to come in?",
    "And what time suits you best?",
    "Which site would you prefer, Main Street Clinic or Harbour Road?",
    "Great. Shall I book that for you?",
)
GOODBYE = "You're all booked. Goodbye!"


@dataclass
class Session:
    """One socket as the double saw it."""

    call_id: str
    #: Every frame the simulator sent, parsed, in order.
    frames: list[dict[str, Any]] = field(default_factory=list)
    #: Every frame the double sent, in order.
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: The code the simulator closed the socket with (``None`` until it did).
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The received frames of one ``interaction_type``."""
        return [f for f in self.frames if f.get("interaction_type") == kind]


@dataclass(frozen=True)
class Delivery:
    """One webhook post: ``event`` (``call_inbound`` for the inbound webhook), parsed body."""

    event: str
    body: dict[str, Any]
    raw: bytes
    verdict: Verdict
    at: float

    @property
    def call(self) -> dict[str, Any]:
        """The call object of a call-event webhook."""
        call: dict[str, Any] = self.body["call"]
        return call


class LlmDouble:
    """The custom-LLM socket, the webhook receiver and the inbound webhook, recorded."""

    def __init__(
        self,
        api_key: str,
        *,
        inbound_answer: dict[str, Any] | None = None,
        inbound_status: int = 200,
        close_code: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.inbound_answer = inbound_answer or {}
        self.inbound_status = inbound_status
        self.close_code = close_code
        self.sessions: dict[str, Session] = {}
        #: Webhook posts of both kinds, in arrival order.
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/hook")(self._hook)
        self.app.post("/hook/inbound")(self._inbound)
        self.app.websocket("/llm/{call_id}")(self._socket)

    # inspection ------------------------------------------------------------------------------

    def for_call(self, call_id: str) -> list[Delivery]:
        """The deliveries about ``call_id`` (both webhooks), in arrival order."""
        with self._lock:
            found = list(self.deliveries)
        return [d for d in found if _call_id(d.body) == call_id]

    # webhooks --------------------------------------------------------------------------------

    async def _record(self, request: Request) -> Delivery:
        raw = await request.body()
        verdict = verify(
            raw, self.api_key, request.headers.get(HEADER), now_ms=int(time.time() * 1000)
        )
        body = orjson.loads(raw)
        delivery = Delivery(body["event"], body, raw, verdict, time.monotonic())
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    async def _hook(self, request: Request) -> Response:
        delivery = await self._record(request)
        return Response(status_code=204 if delivery.verdict is Verdict.OK else 401)

    async def _inbound(self, request: Request) -> Response:
        delivery = await self._record(request)
        if delivery.verdict is not Verdict.OK:
            return Response(status_code=401)
        if self.inbound_status != 200:
            return Response(status_code=self.inbound_status)
        return JSONResponse(self.inbound_answer)

    # the custom-LLM socket -------------------------------------------------------------------

    async def _socket(self, ws: WebSocket, call_id: str) -> None:
        session = Session(call_id)
        self.sessions[call_id] = session
        await ws.accept()

        async def send(frame: dict[str, Any]) -> None:
            session.sent.append(frame)
            await ws.send_text(orjson.dumps(frame).decode())

        async def receive() -> dict[str, Any]:
            while True:
                frame: dict[str, Any] = orjson.loads(await ws.receive_text())
                session.frames.append(frame)
                if frame.get("interaction_type") != "ping_pong":
                    return frame
                await send({"response_type": "ping_pong", "timestamp": frame["timestamp"]})

        async def say(response_id: int, text: str, *, end_call: bool = False) -> None:
            head, _, tail = text.partition(" ")
            chunk = {"response_type": "response", "response_id": response_id}
            await send(chunk | {"content": head + " ", "content_complete": False})
            await send(chunk | {"content": tail, "content_complete": True, "end_call": end_call})

        try:
            await send({"response_type": "config", "config": {"call_details": True}})
            details = await asyncio.wait_for(receive(), timeout=5)
            variables = details.get("call", {}).get("retell_llm_dynamic_variables") or {}
            greeting = GREETING.format(name=variables.get("patient_name", "there"))
            await say(0, f"{greeting} {QUESTIONS[0]}")
            if self.close_code is not None:
                await ws.close(code=self.close_code)
                return
            while True:
                frame = await receive()
                if frame.get("interaction_type") != "response_required":
                    continue
                response_id = int(frame["response_id"])
                if response_id < len(QUESTIONS):
                    await say(response_id, QUESTIONS[response_id])
                else:
                    await say(response_id, GOODBYE, end_call=True)
        except WebSocketDisconnect as exc:
            session.close_code = exc.code


def _call_id(body: dict[str, Any]) -> str | None:
    for key in ("call", "call_inbound"):
        part = body.get(key)
        if isinstance(part, dict) and isinstance(part.get("call_id"), str):
            return str(part["call_id"])
    return None

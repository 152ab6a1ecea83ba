"""Plays Retell's side of the custom-LLM socket in tests: one call, turn by turn.

Besides plain turns it plays what real calls do: a caller who keeps talking after a request
(Retell asks again with the utterance grown and the unspoken reply left out), two requests back
to back, a web call (no numbers), and the socket lost and opened again mid-call.

Before its socket opens, a call is announced as Retell would announce it: an inbound phone call
through ringlog's signed inbound webhook (its answer's ``metadata`` becomes the call's), any
other call as a record a Retell stand-in answers get-call with (``retell``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from ringlog.api.signature import sign
from tests.support.retell_double import RETELL_KEY, RetellDouble


@dataclass
class Said:
    """One complete agent response."""

    text: str
    end_call: bool
    response_id: int


@dataclass
class Caller:
    """A call on ringlog's socket: ``open`` sends the call details and reads the begin message."""

    base_url: str
    phone: str
    direction: str = "inbound"
    #: ``"web_call"`` for a call from a browser: no numbers, an access token
    call_type: str = "phone_call"
    metadata: dict[str, Any] = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")
    #: answers get-call for this call; ``None``: an inbound phone call, announced by webhook
    retell: RetellDouble | None = None
    #: the key Retell signs webhooks with
    retell_key: str = RETELL_KEY
    transcript: list[dict[str, str]] = field(default_factory=list)
    first_words: str = ""
    #: seconds from opening the socket to the first chunk of the begin message
    first_chunk_s: float = 0.0
    _socket: ClientConnection | None = None
    _announced: bool = False
    _next_id: int = 1

    @property
    def socket(self) -> ClientConnection:
        assert self._socket is not None, "open() first"
        return self._socket

    async def open(self) -> str:
        """Announce the call, connect, answer ``config`` with ``call_details``, and return the
        begin message."""
        await self.announce()
        said = await self._connect(details=True)
        self.first_words = said.text
        return said.text

    async def reconnect(self, *, details: bool = True) -> str:
        """Lose the socket (no close frame: the server sees 1006), open it again for the same
        call as Retell's ``auto_reconnect`` does, sending ``call_details`` again only if
        ``details``; return the new begin message."""
        self.socket.transport.abort()
        await self.socket.wait_closed()
        self._next_id = 1  # a new socket numbers its requests afresh
        return (await self._connect(details=details, spoken=False)).text

    async def _connect(self, *, details: bool, spoken: bool = True) -> Said:
        url = self.base_url.replace("http://", "ws://") + f"/v1/llm/{self.call_id}"
        started = time.perf_counter()
        self._socket = await connect(url)
        config = orjson.loads(await self.socket.recv())
        assert config["response_type"] == "config" and config["config"]["call_details"] is True
        assert config["config"]["auto_reconnect"] is True
        if details:
            await self.send({"interaction_type": "call_details", "call": self.call_object()})
        return await self._read_response(0, started, spoken=spoken)

    async def announce(self) -> None:
        """Make the call known as Retell would (see the module's docstring); once."""
        if self._announced:
            return
        self._announced = True
        if self.retell is not None:
            self.retell.add(self.call_object())
            return
        assert self.call_type == "phone_call" and self.direction == "inbound", "needs retell"
        call = self.call_object()
        body = orjson.dumps(
            {
                "event": "call_inbound",
                "call_inbound": {
                    "from_number": call["from_number"],
                    "to_number": call["to_number"],
                    "agent_id": call["agent_id"],
                    "call_id": self.call_id,
                },
            }
        )
        signature = sign(body, self.retell_key, int(time.time() * 1000))
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            answer = await http.post(
                "/v1/webhooks/retell/inbound",
                content=body,
                headers={"x-retell-signature": signature, "content-type": "application/json"},
            )
        assert answer.status_code == 200, answer.text
        self.metadata = {**self.metadata, **answer.json()["call_inbound"]["metadata"]}

    def call_object(self) -> dict[str, Any]:
        """The call Retell would describe."""
        if self.call_type == "web_call":
            return {
                "call_id": self.call_id,
                "call_type": "web_call",
                "agent_id": "agent_test",
                "call_status": "ongoing",
                "access_token": f"token_{self.call_id}",
                "metadata": self.metadata,
            }
        ringlog = "+14155559876"
        return {
            "call_id": self.call_id,
            "call_type": "phone_call",
            "agent_id": "agent_test",
            "call_status": "ongoing",
            "direction": self.direction,
            "from_number": self.phone if self.direction == "inbound" else ringlog,
            "to_number": ringlog if self.direction == "inbound" else self.phone,
            "metadata": self.metadata,
        }

    async def say(self, words: str, *, reminder: bool = False) -> Said:
        """Speak ``words`` and return the agent's complete answer."""
        if not reminder:
            self.transcript.append({"role": "user", "content": words})
        response_id = self._next_id
        self._next_id += 1
        kind = "reminder_required" if reminder else "response_required"
        await self.send(
            {"interaction_type": kind, "response_id": response_id, "transcript": self.transcript}
        )
        return await self._read_response(response_id)

    async def keep_talking(self, said: str, then: str, *, answered_first: bool = True) -> Said:
        """Retell's interruption: a request with ``said``, then, because the caller keeps
        talking, a newer one whose last user entry has grown to ``then`` and which leaves the
        first reply out (it was not spoken). With ``answered_first`` the newer request goes
        out after the server's reply to the first is complete, else right after the first.
        The answer to the newer request."""
        self.transcript.append({"role": "user", "content": said})
        first = await self._request(self.transcript)
        if answered_first:
            await self._read_response(first, spoken=False)
        self.transcript[-1] = {"role": "user", "content": then}
        return await self._read_response(await self._request(self.transcript))

    async def twice(self, words: str, *, answered_first: bool = True) -> Said:
        """Two requests carrying the same final utterance, back to back: only the second
        reply is spoken. The answer to the second."""
        return await self.keep_talking(words, words, answered_first=answered_first)

    async def _request(self, transcript: list[dict[str, str]]) -> int:
        response_id = self._next_id
        self._next_id += 1
        await self.send(
            {
                "interaction_type": "response_required",
                "response_id": response_id,
                "transcript": [dict(entry) for entry in transcript],
            }
        )
        return response_id

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(orjson.dumps(message).decode())

    async def send_raw(self, text: str) -> None:
        await self.socket.send(text)

    async def hang_up(self) -> None:
        """Close the socket normally (1000), as Retell does when the caller hangs up."""
        await self.socket.close(code=1000)
        await self.socket.wait_closed()

    async def close_code(self) -> int | None:
        """Wait for the socket to close (ringlog closes it after ``end_call``); its code."""
        await self.socket.wait_closed()
        return self.socket.close_code

    async def _read_response(
        self, response_id: int, started: float | None = None, *, spoken: bool = True
    ) -> Said:
        """Read chunks until ``response_id`` is complete; an unspoken one (``spoken=False``)
        stays out of the transcript, as Retell leaves it out."""
        chunks: list[str] = []
        while True:
            frame = orjson.loads(await self.socket.recv())
            if frame.get("response_type") != "response" or frame["response_id"] != response_id:
                continue
            if started is not None and not chunks:
                self.first_chunk_s = time.perf_counter() - started
            chunks.append(frame["content"])
            if frame["content_complete"]:
                text = "".join(chunks).strip()
                if spoken and text:
                    self.transcript.append({"role": "agent", "content": text})
                return Said(text, bool(frame.get("end_call")), response_id)

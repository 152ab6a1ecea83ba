"""Retell's side of the custom-LLM WebSocket for one call, as a pure state machine.

:class:`Dialog` takes each frame ringlog's server sends (``config``, ``response`` chunks,
``agent_interrupt``, ``ping_pong`` echoes) and returns the frames Retell sends back; the socket
itself is driven by :mod:`ringlog.simulator.llm_client`. Agent utterances are joined from their
chunks until ``content_complete`` (or ``end_call``); each complete one is answered by the
:class:`~ringlog.simulator.patient.Patient` with ``update_only`` then ``response_required``
(``response_id`` 1, 2, …) carrying the whole transcript. Chunks of any other response id than
the one awaited are stale and dropped, and never enter the transcript (Retell does not speak
them).

What real calls do is played when the :class:`~ringlog.simulator.faults.Faults` ask for it,
each the first time the agent asks the named question: the patient keeps talking
(``keep_talking_at``: a request with the answer cut short, ``update_only`` with
``turntaking: user_turn`` and the grown answer, then a request with the whole answer), two
requests back to back with the same words (``twice_at``), or the socket is lost
(``reconnect_at``: :attr:`Dialog.reconnect_due` tells the socket driver to drop the connection
without a close frame and open it again; :meth:`Dialog.reconnected` starts the new socket,
which gets ``call_details`` again if ``reconnect_details``, numbers requests from 1, and takes
the patient's held answer once the server's begin message arrived).

The call ends (:attr:`Dialog.outcome` is set) when the agent says something with ``end_call``
(``agent_hangup``), the patient hangs up (``user_hangup``), the server closes the socket, the
socket cannot be opened, the server falls silent, or the agent talks for too many turns.
Whenever the simulator ends the call itself it closes the socket with code 1000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ringlog.simulator.faults import Faults
from ringlog.simulator.patient import Patient

#: The close code the simulator sends, and the one the server ends a call normally with.
NORMAL_CLOSURE = 1000
#: What websockets reports when the connection dropped without a close frame.
ABNORMAL_CLOSURE = 1006
#: Agent utterances after which the call is cut off (``max_duration_reached``).
MAX_AGENT_TURNS = 50


@dataclass(frozen=True)
class Outcome:
    """How the call ended: Retell's ``disconnection_reason`` and whether a slot was booked."""

    reason: str
    booked: bool = False


class Dialog:
    """The protocol state of one call's socket: transcript, response ids, and the outcome."""

    def __init__(
        self,
        call: dict[str, Any],
        patient: Patient,
        *,
        max_agent_turns: int = MAX_AGENT_TURNS,
        faults: Faults | None = None,
    ) -> None:
        self.call = call
        self.patient = patient
        self.max_agent_turns = max_agent_turns
        self.faults = faults or Faults()
        #: ``{"role": "agent" | "user", "content": ...}`` entries, spoken order.
        self.transcript: list[dict[str, str]] = []
        #: The agent's first non-empty complete utterance (normally the begin message).
        self.first_agent_words: str | None = None
        #: Set once the call is over; nothing is sent afterwards.
        self.outcome: Outcome | None = None
        #: The socket's close code (sent by whichever side closed first), once closed.
        self.close_code: int | None = None
        #: The ``config`` the server sent, if any.
        self.config: dict[str, Any] | None = None
        self.pings_sent = 0
        self.pongs_received = 0
        self.agent_turns = 0
        self._awaiting = 0
        self._chunks: list[str] = []
        self._interrupts: dict[int, list[str]] = {}
        self._begun = False
        #: Set when the socket is to be lost now (``reconnect_at``); see :meth:`reconnected`.
        self.reconnect_due = False
        #: Sockets opened again for this call.
        self.reconnects = 0
        #: Every ``response_required`` sent: ``(response_id, the user's last words)``.
        self.requests: list[tuple[int, str]] = []
        self._rejoining = False
        self._held: str | None = None
        self._played: set[str] = set()

    # frames from the server ------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> list[dict[str, Any]]:
        """Take one frame from the server; return the frames to send back, in order.

        A frame that is not a JSON object ends the call as
        ``error_llm_websocket_corrupt_payload``; unknown ``response_type`` values are ignored.
        """
        if self.outcome is not None:
            return []
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict):
            self._end("error_llm_websocket_corrupt_payload")
            return []
        kind = frame.get("response_type")
        if kind == "config":
            return self._configured(frame.get("config"))
        if kind == "ping_pong":
            self.pongs_received += 1
            return []
        if kind == "response":
            if frame.get("response_id") != self._awaiting:
                return []
            return self._chunk(self._chunks, frame)
        if kind == "agent_interrupt":
            interrupt_id = frame.get("interrupt_id")
            chunks = self._interrupts.setdefault(
                interrupt_id if isinstance(interrupt_id, int) else -1, []
            )
            return self._chunk(chunks, frame)
        return []

    def reconnected(self) -> None:
        """The lost socket was opened again: a new ``config`` and begin message follow, then
        the patient gives the answer held back when the socket was lost."""
        self.reconnect_due = False
        self.reconnects += 1
        self._rejoining = True
        self._awaiting = 0
        self._chunks.clear()

    def ping(self, now_ms: int) -> dict[str, Any]:
        """The next ``ping_pong`` frame to send (counted)."""
        self.pings_sent += 1
        return {"interaction_type": "ping_pong", "timestamp": now_ms}

    # the socket's end ------------------------------------------------------------------------

    def closed_by_server(self, code: int) -> None:
        """The server closed the socket (or it dropped) with ``code``; end the call if still on.

        1000 is the agent hanging up; a drop without a close frame (1006) is
        ``error_llm_websocket_lost_connection``; any other code ``error_llm_websocket_runtime``.
        """
        if self.close_code is None:
            self.close_code = code
        if code == NORMAL_CLOSURE:
            self._end("agent_hangup")
        elif code == ABNORMAL_CLOSURE:
            self._end("error_llm_websocket_lost_connection")
        else:
            self._end("error_llm_websocket_runtime")

    def closed_by_simulator(self) -> None:
        """The simulator closed the socket (always with 1000) after the call ended."""
        if self.close_code is None:
            self.close_code = NORMAL_CLOSURE

    def failed_to_open(self) -> None:
        """The socket could not be opened: ``error_llm_websocket_open``."""
        self._end("error_llm_websocket_open")

    def fell_silent(self) -> None:
        """The server sent nothing for too long: the call ends as ``inactivity``."""
        self._end("inactivity")

    # internals -------------------------------------------------------------------------------

    def _configured(self, config: Any) -> list[dict[str, Any]]:
        self.config = config if isinstance(config, dict) else {}
        if self._rejoining and not self.faults.reconnect_details:
            return []
        if self.config.get("call_details") is True:
            return [{"interaction_type": "call_details", "call": self.call}]
        return []

    def _chunk(self, chunks: list[str], frame: dict[str, Any]) -> list[dict[str, Any]]:
        content = frame.get("content")
        if isinstance(content, str):
            chunks.append(content)
        end_call = frame.get("end_call") is True
        if not (frame.get("content_complete") is True or end_call):
            return []
        text = "".join(chunks).strip()
        chunks.clear()
        return self._agent_said(text, end_call=end_call)

    def _agent_said(self, text: str, *, end_call: bool) -> list[dict[str, Any]]:
        """A complete agent utterance: record it, then hang up or let the patient answer."""
        begin, self._begun = not self._begun, True
        rejoined, self._rejoining = self._rejoining, False
        if text:
            self.transcript.append({"role": "agent", "content": text})
            self.first_agent_words = self.first_agent_words or text
            self.agent_turns += 1
        if end_call:
            self._end("agent_hangup")
            return []
        if self.agent_turns >= self.max_agent_turns:
            self._end("max_duration_reached")
            return []
        if rejoined and self._held is not None:  # the answer held over the lost socket
            held, self._held = self._held, None
            return self._answer(held, None)
        phrase: str | None = None
        if begin and not text:
            said: str | None = self.patient.greeting()
        else:
            reply = self.patient.answer(text)
            said, phrase = reply.text, reply.phrase
        if said is None:
            self._end("user_hangup")
            return []
        if self._plays("reconnect_at", phrase):
            self._held = said
            self.reconnect_due = True
            return []
        return self._answer(said, phrase)

    def _plays(self, fault: str, phrase: str | None) -> bool:
        """Whether ``fault`` (``keep_talking_at`` …) happens at ``phrase`` now (once a call)."""
        if phrase is None or fault in self._played or self.faults.phrase(fault) != phrase:
            return False
        self._played.add(fault)
        return True

    def _answer(self, said: str, phrase: str | None) -> list[dict[str, Any]]:
        """The frames that give the patient's answer ``said`` to the question ``phrase``."""
        self.transcript.append({"role": "user", "content": said})
        if self._plays("keep_talking_at", phrase) and len(said.split()) > 1:
            cut = said.rsplit(" ", 1)[0]
            self.transcript[-1] = {"role": "user", "content": cut}
            first = self._request()
            self.transcript[-1] = {"role": "user", "content": said}
            growing = {
                "interaction_type": "update_only",
                "transcript": self._history(),
                "turntaking": "user_turn",
            }
            return [first, growing, self._request()]
        if self._plays("twice_at", phrase):
            return [self._request(), self._request()]
        return [{"interaction_type": "update_only", "transcript": self._history()}, self._request()]

    def _request(self) -> dict[str, Any]:
        """The next ``response_required``, with the transcript as it is now."""
        self._awaiting += 1
        self.requests.append((self._awaiting, self.transcript[-1]["content"]))
        return {
            "interaction_type": "response_required",
            "response_id": self._awaiting,
            "transcript": self._history(),
        }

    def _history(self) -> list[dict[str, str]]:
        return [dict(entry) for entry in self.transcript]

    def _end(self, reason: str) -> None:
        if self.outcome is None:
            booked = reason == "agent_hangup" and self.patient.booked
            self.outcome = Outcome(reason, booked=booked)

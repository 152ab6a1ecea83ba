"""A simulated call as the simulator keeps it: its Retell call object, how its script or dialog
went, and every webhook post attempt."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ringlog.simulator.dialog import Dialog
from ringlog.simulator.faults import Faults
from ringlog.simulator.patient import Persona
from ringlog.simulator.script import STAGES


class NotStarted(RuntimeError):
    """A call was created before the simulator's lifespan started its HTTP client."""


@dataclass
class CallRecord:
    """One call: its current object, how its script or dialog went, and every post attempt."""

    call: dict[str, Any]
    idempotency_key: str | None
    #: The faults and the patient in force when the call was made.
    faults: Faults = field(default_factory=Faults)
    persona: Persona = field(default_factory=Persona)
    #: ``playing`` until every webhook was delivered or given up, then ``done``
    #: (``cancelled`` if the simulator stopped first, ``failed`` on a simulator bug).
    status: str = "playing"
    stage: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    #: The custom-LLM socket's dialog, for calls played through it (set once it starts).
    dialog: Dialog | None = None
    #: The inbound webhook's JSON answer (inbound calls whose webhook answered).
    inbound_answer: dict[str, Any] | None = None
    #: The ``disconnection_reason`` of the call's ``call_ended``, once posted.
    disconnection_reason: str | None = None

    def advance(self, event: str, call: dict[str, Any]) -> None:
        """Move the call object forward to ``event``'s snapshot; never backwards."""
        stage = STAGES.get(event, 0)
        if stage > self.stage:
            self.stage, self.call = stage, call

    def transcript(self) -> list[dict[str, str]]:
        """``[{role, content}]`` so far: the dialog's, else the timed script's once ended."""
        if self.dialog is not None:
            return [dict(entry) for entry in self.dialog.transcript]
        return [
            {"role": str(u.get("role")), "content": str(u.get("content"))}
            for u in self.call.get("transcript_object") or []
        ]

    def view(self) -> dict[str, Any]:
        """The inspection entry shown by ``GET /sim/calls`` and ``GET /sim/calls/{call_id}``."""
        dialog = self.dialog
        return {
            "call_id": self.call["call_id"],
            "call_type": self.call.get("call_type"),
            "direction": self.call.get("direction"),
            "idempotency_key": self.idempotency_key,
            "metadata": self.call.get("metadata"),
            "status": self.status,
            "disconnection_reason": self.disconnection_reason,
            "transcript": self.transcript(),
            "ws_close_code": dialog.close_code if dialog else None,
            "first_agent_words": dialog.first_agent_words if dialog else None,
            "pings_sent": dialog.pings_sent if dialog else 0,
            "pongs_received": dialog.pongs_received if dialog else 0,
            "reconnects": dialog.reconnects if dialog else 0,
            "requests": [list(r) for r in dialog.requests] if dialog else [],
            "inbound_answer": copy.deepcopy(self.inbound_answer),
            "deliveries": list(self.deliveries),
        }

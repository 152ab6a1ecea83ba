"""Calls ringlog knows: what a trusted source says about a Retell call. Pure, no I/O.

Retell's custom-LLM socket carries no signature, so who is calling is never taken from its
``call_details`` frame. A call is *known* once a trusted source described it: Retell's signed
inbound webhook, the answer Retell gave ringlog's own create-call, or Retell's get-call API
asked with the account's key. The dialog socket serves only known calls, and takes the patient's
number, the direction and the call ref from the record (see :mod:`ringlog.calls.directory` for
where records are kept, :mod:`ringlog.api.routes.llm` for the socket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ringlog.schemas.base import is_phone_number
from ringlog.schemas.retell import MAX_CALL_ID_LENGTH, InboundCall, call_ref_for, ref_problem

#: Retell's statuses of a call that may still speak (``registered``: about to start).
LIVE_STATUSES = frozenset({"registered", "ongoing"})


@dataclass(frozen=True)
class KnownCall:
    """One call as a trusted source described it.

    ``phone`` is the patient's E.164 number (the caller on an inbound call, the callee on an
    outbound one), ``""`` when there is none usable: a web call, or a withheld or anonymous
    caller. Such a call gets a dialog without a number-keyed session.
    """

    call_id: str
    call_ref: str
    direction: str
    call_type: str
    phone: str

    def to_json(self) -> dict[str, str]:
        """The record as stored."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KnownCall:
        """The record :meth:`to_json` stored."""
        return cls(**{name: str(data.get(name) or "") for name in cls.__dataclass_fields__})


def patient_number(call: Mapping[str, Any]) -> str:
    """The patient's number in a Retell call object: ``from_number`` on an inbound call,
    ``to_number`` on an outbound one; ``""`` for a web call or a number ringlog cannot key a
    session by (:func:`~ringlog.schemas.base.is_phone_number`: a short code, a withheld one)."""
    if call.get("call_type") == "web_call":
        return ""
    key = "to_number" if call.get("direction") == "outbound" else "from_number"
    number = str(call.get(key) or "")
    return number if is_phone_number(number) else ""


def known_from_call(call: Mapping[str, Any]) -> KnownCall | None:
    """The record of a Retell call object (create-call's answer, get-call's): ``None`` when it
    has no usable call id or the call is over (status other than registered/ongoing)."""
    call_id = call.get("call_id")
    if not isinstance(call_id, str) or ref_problem(call_id, MAX_CALL_ID_LENGTH):
        return None
    if call.get("call_status") not in LIVE_STATUSES:
        return None
    call_type = str(call.get("call_type") or "phone_call")
    return KnownCall(
        call_id=call_id,
        call_ref=call_ref_for(call_id, call.get("metadata")),
        direction=str(call.get("direction") or ("web" if call_type == "web_call" else "")),
        call_type=call_type,
        phone=patient_number(call),
    )


def known_from_inbound(inbound: InboundCall, call_ref: str) -> KnownCall | None:
    """The record of a call Retell's signed inbound webhook announced and ringlog named
    ``call_ref``; ``None`` when the webhook carried no call id (the socket then asks get-call)."""
    if not inbound.call_id:
        return None
    caller = {"direction": "inbound", "from_number": inbound.from_number}
    return KnownCall(inbound.call_id, call_ref, "inbound", "phone_call", patient_number(caller))


def disagreements(known: KnownCall, details: Mapping[str, Any]) -> list[str]:
    """The fields on which the socket's ``call_details`` disagree with the record (names only,
    for a log line without values): ``phone``, ``direction``, ``call_ref``, ``call_type``."""
    claimed = {
        "phone": patient_number(details),
        "direction": details.get("direction"),
        "call_ref": call_ref_for(known.call_id, details.get("metadata")),
        "call_type": details.get("call_type"),
    }
    return [name for name, value in claimed.items() if value and value != getattr(known, name)]

"""Phone numbers in the warehouse: hashed (HMAC-SHA256 under a secret key) or kept clear.

:func:`redact` replaces every phone number of an envelope (payload fields, and the key of
``sessions`` events) with :func:`hash_phone`, or leaves them clear when hashing is off. Pure.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable

from ringlog.schemas import (
    CallRequested,
    Envelope,
    EventModel,
    RetellCallInbound,
    RetellWebhook,
    TaskIncomingCall,
)

#: Turns a phone number into what the warehouse stores (a hash, or the number itself).
Protect = Callable[[str], str]
#: The call-key prefix of inbound calls ringlog names by the caller's number.
INBOUND_KEY = "inbound:"


def hash_phone(number: str, key: bytes) -> str:
    """HMAC-SHA256 of the number (surrounding spaces removed) under ``key``, as 64 hex digits.

    The same number and key always give the same hash, so analysts can join and count by it;
    without the key it cannot be reversed by trying every number.
    """
    return hmac.digest(key, number.strip().encode(), "sha256").hex()


def phone_protector(key: str, *, enabled: bool = True) -> Protect:
    """:func:`hash_phone` under ``key`` (memoised: numbers repeat), or the identity when
    hashing is off."""
    if not enabled:
        return lambda number: number
    secret = key.encode()

    @functools.lru_cache(maxsize=65_536)
    def protect(number: str) -> str:
        return hash_phone(number, secret)

    return protect


def _opt(protect: Protect, number: str | None) -> str | None:
    return protect(number) if number else number


def redact(envelope: Envelope, protect: Protect) -> Envelope:
    """The envelope with every phone number it carries passed through ``protect``.

    Covers ``call.requested`` (to/from), Retell webhooks (``call.from_number``, ``to_number``,
    ``transfer_destination``), ``retell.call_inbound``, every ``sessions`` event (``phone`` and
    the key) and ``task.incoming_call``. Copies are made without re-validation, since a hash is
    not an E.164 number.
    """
    p = envelope.payload
    payload: EventModel = p
    key = envelope.key
    if isinstance(p, CallRequested):
        payload = p.model_copy(
            update={"to_number": protect(p.to_number), "from_number": protect(p.from_number)}
        )
    elif isinstance(p, RetellWebhook):
        call = p.call
        changes = {
            name: protect(value)
            for name in ("from_number", "to_number", "transfer_destination")
            if (value := getattr(call, name))
        }
        if changes:
            payload = p.model_copy(update={"call": call.model_copy(update=changes)})
    elif isinstance(p, RetellCallInbound):
        inbound = p.call_inbound
        changes = {
            "from_number": protect(inbound.from_number),
            "to_number": protect(inbound.to_number),
        }
        payload = p.model_copy(update={"call_inbound": inbound.model_copy(update=changes)})
    elif isinstance(p, TaskIncomingCall):
        payload = p.model_copy(
            update={"from_number": protect(p.from_number), "to_number": protect(p.to_number)}
        )
    elif p.topic == "sessions" and isinstance(getattr(p, "phone", None), str):
        payload = p.model_copy(update={"phone": protect(p.phone)})  # type: ignore[attr-defined]
        key = protect(key)
    if key.startswith(INBOUND_KEY):
        key = INBOUND_KEY + protect(key.removeprefix(INBOUND_KEY))
    if payload is p and key == envelope.key:
        return envelope
    return envelope.model_copy(update={"payload": payload, "key": key})

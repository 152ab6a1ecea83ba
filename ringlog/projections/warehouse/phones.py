"""Phone numbers in the warehouse: hashed (HMAC-SHA256 under a secret key) or kept clear.

:func:`redact` replaces every phone number of an envelope (payload fields, numbers in
metadata and in a dispatch failure's reason, the key of ``sessions`` events) with
:func:`hash_phone`, or leaves them clear when hashing is off. Pure.

ringlog's own events are copied with ``msgspec.structs.replace``, without validation (a hash is
not an E.164 number). A Retell payload is rebuilt from a new body, its body as sent
(``to_wire()``) with the numbers replaced in place, through ``from_body``: the fields ringlog
does not model stay, and the typed view of the copy reads the hashes. The kept body is never
changed: new dicts are built.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from msgspec import structs

from ringlog.schemas import (
    CallDispatchFailed,
    CallRequested,
    Envelope,
    EventModel,
    RetellCallInbound,
    RetellWebhook,
    TaskFieldWriteback,
    TaskIncomingCall,
)
from ringlog.schemas.base import PHONE_DIGITS, is_phone_number

#: Turns a phone number into what the warehouse stores (a hash, or the number itself).
Protect = Callable[[str], str]
#: The call-key prefix of inbound calls ringlog names by the caller's number.
INBOUND_KEY = "inbound:"
#: Task fields that hold a phone number (see :class:`ringlog.tasks.fields.TaskFields`).
PHONE_FIELDS = frozenset({"callback_number"})
#: A phone number inside free text.
_PHONE_IN_TEXT = re.compile(PHONE_DIGITS + r"\b")
#: A Retell payload: a body as sent beside its typed view.
_Retell = TypeVar("_Retell", RetellWebhook, RetellCallInbound)


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


def _numbers_in(values: Mapping[str, Any], protect: Protect) -> dict[str, Any]:
    """``values`` with every value that is a phone number protected (metadata, variables)."""
    return {
        k: protect(v) if isinstance(v, str) and is_phone_number(v.strip()) else v
        for k, v in values.items()
    }


def _numbers_in_text(text: str, protect: Protect) -> str:
    return _PHONE_IN_TEXT.sub(lambda m: protect(m.group(0)), text)


def redact(envelope: Envelope, protect: Protect) -> Envelope:
    """The envelope with every phone number it carries passed through ``protect``.

    Covers ``call.requested`` (to/from, and metadata values that are numbers), the reason of
    ``call.dispatch_failed`` (numbers inside it), Retell webhooks (``call.from_number``,
    ``to_number``, ``transfer_destination``, and number values of ``metadata`` and
    ``retell_llm_dynamic_variables``), ``retell.call_inbound``, every ``sessions`` event
    (``phone`` and the key), ``task.incoming_call``, ``callback_number`` of
    ``task.field_writeback``, and a correlation id that is a number. ringlog's own events are
    copied without re-validation, since a hash is not an E.164 number; a Retell payload is
    re-read from its new body (:func:`_with_numbers`), which takes a hash: Retell's numbers are
    plain strings.
    """
    p = envelope.payload
    payload: EventModel = p
    key = envelope.key
    if isinstance(p, CallRequested):
        payload = structs.replace(
            p,
            to_number=protect(p.to_number),
            from_number=protect(p.from_number),
            metadata=_numbers_in(p.metadata, protect),
        )
    elif isinstance(p, CallDispatchFailed):
        reason = _numbers_in_text(p.reason, protect)
        if reason != p.reason:
            payload = structs.replace(p, reason=reason)
    elif isinstance(p, RetellWebhook):
        call = p.call
        changes: dict[str, Any] = {
            name: protect(value)
            for name in ("from_number", "to_number", "transfer_destination")
            if (value := getattr(call, name))
        }
        for name in ("metadata", "retell_llm_dynamic_variables"):
            values = getattr(call, name)
            if values and (hashed := _numbers_in(values, protect)) != values:
                changes[name] = hashed
        if changes:
            payload = _with_numbers(p, "call", changes)
    elif isinstance(p, RetellCallInbound):
        inbound = p.call_inbound
        changes = {
            "from_number": protect(inbound.from_number),
            "to_number": protect(inbound.to_number),
        }
        payload = _with_numbers(p, "call_inbound", changes)
    elif isinstance(p, TaskIncomingCall):
        payload = structs.replace(
            p, from_number=protect(p.from_number), to_number=protect(p.to_number)
        )
    elif isinstance(p, TaskFieldWriteback) and PHONE_FIELDS & p.fields.keys():
        fields = {
            name: protect(value) if name in PHONE_FIELDS and isinstance(value, str) else value
            for name, value in p.fields.items()
        }
        payload = structs.replace(p, fields=fields)
    elif p.topic == "sessions" and isinstance(phone := getattr(p, "phone", None), str):
        payload = structs.replace(p, phone=protect(phone))
        key = protect(key)
    if key.startswith(INBOUND_KEY):
        key = INBOUND_KEY + protect(key.removeprefix(INBOUND_KEY))
    correlation = envelope.correlation_id
    if correlation and is_phone_number(correlation):
        correlation = protect(correlation)
    if payload is p and key == envelope.key and correlation == envelope.correlation_id:
        return envelope
    return structs.replace(envelope, payload=payload, key=key, correlation_id=correlation)


def _with_numbers(payload: _Retell, part: str, changes: Mapping[str, Any]) -> _Retell:
    """``payload`` rebuilt from its body as sent with ``changes`` made to the object ``part``
    (``call`` or ``call_inbound``): changed fields stay where they were sent, fields not sent
    are added at the end. New dicts: the kept body is not changed."""
    sent = payload.to_wire()
    changed = {**sent[part], **changes}
    return type(payload).from_body({**sent, part: changed})

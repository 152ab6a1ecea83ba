"""The base of every event payload, and helpers shared by the event families."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

import msgspec
from pydantic import StringConstraints

#: A phone number as ringlog keys and protects it: E.164, ``+`` then 7 to 15 digits (the first
#: not 0), unanchored (to find numbers in text). The one rule for every event field, the
#: warehouse's hashing and the dialog's choice of a session key.
PHONE_DIGITS = r"\+[1-9]\d{6,14}"
#: :data:`PHONE_DIGITS` as a whole string.
PHONE_PATTERN = f"^{PHONE_DIGITS}$"
_PHONE = re.compile(PHONE_PATTERN)

#: A phone number in E.164 form (:data:`PHONE_PATTERN`), as ringlog's own events carry it.
#: Retell's models do not use it: what Retell sends is kept as sent. One alias for both
#: libraries: the API's pydantic bodies read the ``StringConstraints``, the events (msgspec)
#: the ``Meta``, which ends in ``\Z`` (Python's ``$`` also matches before a final newline).
PhoneNumber = Annotated[
    str,
    StringConstraints(pattern=PHONE_PATTERN),
    msgspec.Meta(pattern=f"^{PHONE_DIGITS}\\Z"),
]

#: What :meth:`EventModel.to_wire` leaves as Python objects (orjson writes them natively).
WIRE_TYPES = (datetime, date, uuid.UUID)


def is_phone_number(value: str) -> bool:
    """Whether the whole of ``value`` is a :data:`PhoneNumber` (a trailing newline is not)."""
    return _PHONE.fullmatch(value) is not None


#: The logical topics an event can belong to (physical names add a configurable prefix).
TOPICS = frozenset({"calls", "dialog", "sessions", "abt", "tasks"})

#: Namespace of ringlog's deterministic (UUIDv5) event ids. Never change it: replays of the
#: log must derive the ids they derived before.
RINGLOG_NAMESPACE = uuid.UUID("5b0f6a52-43c1-4f37-9d1e-6f1d1b7f4e21")


def derived_event_id(*parts: str) -> uuid.UUID:
    """Return a UUIDv5 fixed by ``parts``, so an event derived twice gets the same id.

    The parts are joined with the ASCII unit separator, so ``("a", "bc")`` and ``("ab", "c")``
    give different ids. At least one part is required.
    """
    if not parts:
        raise ValueError("derived_event_id needs at least one part")
    return uuid.uuid5(RINGLOG_NAMESPACE, "\x1f".join(parts))


class EventModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A frozen event payload (a msgspec ``Struct``). Subclasses name their type, version and topic.

    ``event_type`` and ``schema_version`` identify the model in the registry; ``topic`` is the
    logical topic it is appended to; :meth:`partition_key` is the aggregate id used as the
    Kafka key (call ref, phone number or task id). Unknown fields are refused.

    Constructing one does **not** validate it (field types and constraints are checked only
    when decoding, :func:`ringlog.schemas.codec.decode`); the producer re-reads what it
    encodes before appending, so nothing invalid reaches the log.

    Payloads are not tracked by the cyclic garbage collector (``gc=False``): their fields are
    decoded values that never refer back to them (``AsSent``, which keeps a ``__dict__``, is).
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int]
    topic: ClassVar[str]

    def partition_key(self) -> str:
        """Return the aggregate id this event belongs to (subclasses implement it)."""
        raise NotImplementedError(f"{type(self).__name__} does not name its key")

    def to_wire(self) -> dict[str, Any]:
        """The payload as written to the log: every field, so defaults never change history.

        Values are Python objects (datetimes, UUIDs, tuples) that orjson serialises natively.
        """
        return msgspec.to_builtins(self, builtin_types=WIRE_TYPES)  # type: ignore[no-any-return]

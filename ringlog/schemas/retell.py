"""Retell's webhook events as they arrive (topic ``calls``), modelled from retell.md.

Retell adds fields over time, so every model here keeps unknown fields and writes them back
unchanged: the typed Struct is a view of the fields ringlog reads, and the body as sent (or the
bytes it was read from) is kept beside it, the one source of :meth:`RetellWebhook.to_wire`.
Build one from a body with ``from_body``, which reads it leniently (``"3"`` for an int), as
Retell's bodies are stored as sent. The current body shape is ``{"event", "call"}`` (version 2);
older deliveries used ``data`` instead of ``call`` and are stored as version 1, read through
an upcaster. Retell sends no event id: deliveries are deduplicated on ``(call_id, event)``.

Every Retell call gets its ringlog call ref from one rule, :func:`call_ref_for` (see there).

**Bounds.** The identifiers that become keys in every store — Retell's ``call_id`` and a
``metadata.call_ref`` — must be usable call refs (:func:`ref_problem`: at most 128 characters,
121 for a call id so that ``retell:<call_id>`` fits, and no control characters). The check is
a ``__post_init__`` check, not a field constraint: it is not part of the JSON Schema contract, so it
refuses such a body at the webhook (400, kept on the quarantine topic) without changing what
the committed schemas promise. A record already on the log that breaks it no longer decodes
and goes to the dead-letter topic of whoever reads it. Everything else Retell sends is kept
as sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Self

import msgspec
import orjson

from ringlog.schemas.base import WIRE_TYPES, EventModel
from ringlog.schemas.envelope import new_event_id
from ringlog.schemas.registry import REGISTRY, Payload

#: Ref prefix of a call Retell named and ringlog did not (an inbound call, or one placed
#: outside ringlog): ``retell:<call_id>``.
RETELL_REF_PREFIX = "retell:"
#: Ref prefix ringlog mints for an inbound call Retell announced without a call id.
MINTED_REF_PREFIX = "in_"
#: Ref prefixes of calls the patient placed; ringlog's own outbound calls are ``call_<hex>``.
INBOUND_REF_PREFIXES = (RETELL_REF_PREFIX, MINTED_REF_PREFIX)
#: The longest call ref (and Retell call id) ringlog accepts: every store keys calls by it in
#: at most 128 characters.
MAX_REF_LENGTH = 128
#: The longest Retell call id: its ref ``retell:<call_id>`` stays within :data:`MAX_REF_LENGTH`.
MAX_CALL_ID_LENGTH = MAX_REF_LENGTH - len(RETELL_REF_PREFIX)
#: Control characters: C0, DEL and C1. NUL is among them, which PostgreSQL refuses in any text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def ref_problem(value: str, max_length: int = MAX_REF_LENGTH) -> str | None:
    """Why ``value`` cannot be a call ref (or, with :data:`MAX_CALL_ID_LENGTH`, a Retell call
    id), or ``None`` when it can: 1-``max_length`` characters, no control characters. Pure."""
    if not value:
        return "is empty"
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    # printable ASCII holds no control character (a C test); anything else is searched
    if not (value.isascii() and value.isprintable()) and CONTROL_CHARACTERS.search(value):
        return "contains a control character"
    return None


def call_ref_for(
    call_id: str | None, metadata: object = None, *, mint: Callable[[], str] | None = None
) -> str:
    """ringlog's call ref for a Retell call: the one rule for the call-event webhooks, the
    inbound webhook and the dialog socket. Pure (given a pure ``mint``).

    1. ``metadata["call_ref"]`` when it is a non-empty string. ringlog named the call: the ref
       of an outbound call is sent to Retell in ``metadata``, the ref of an inbound call is the
       inbound webhook's answer (``call_inbound.metadata``), and Retell echoes ``metadata`` in
       every webhook and in the socket's ``call_details``.
    2. else ``retell:<call_id>``, when Retell gave a call id: a call nobody named (the inbound
       webhook with a call id, which answers with this very ref; a call placed elsewhere).
    3. else ``mint()``. Only the inbound webhook may come without a call id; ringlog names the
       call then (:func:`mint_call_ref`) and answers with the name, so everything later about
       the call carries it by rule 1. A phone number is not a fallback: two calls from one
       number are two calls, and a ref must not carry the caller's number.

    Raises ``ValueError`` when rule 3 is needed and no ``mint`` is given.
    """
    ref = metadata.get("call_ref") if isinstance(metadata, dict) else None
    if isinstance(ref, str) and ref:
        return ref
    if call_id:
        return f"{RETELL_REF_PREFIX}{call_id}"
    if mint is None:
        raise ValueError("a call with no call_ref in metadata and no call id needs a minted ref")
    return mint()


def mint_call_ref() -> str:
    """A fresh ``in_<UUIDv7 hex>`` ref for an inbound call Retell gave no call id."""
    return f"{MINTED_REF_PREFIX}{new_event_id().hex}"


def is_inbound_ref(call_ref: str) -> bool:
    """Whether ``call_ref`` names a call the patient placed (see :data:`INBOUND_REF_PREFIXES`)."""
    return call_ref.startswith(INBOUND_REF_PREFIXES)


class _Tolerant(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=False
):
    """A part of a Retell body: unknown fields are skipped by the typed view (the body as sent,
    kept by the event, holds them)."""


class Utterance(_Tolerant, frozen=True, kw_only=True):
    """One transcript entry: ``role`` (``agent``, ``user``, ``transfer_target`` …), ``content``.

    ``words`` and the per-utterance ``metadata`` (``response_id`` …) are kept as sent.
    """

    role: str | None = None
    content: str = ""


class CallAnalysis(_Tolerant, frozen=True, kw_only=True):
    """Retell's post-call analysis (``call_analyzed`` only)."""

    call_summary: str | None = None
    user_sentiment: str | None = None
    call_successful: bool | None = None
    in_voicemail: bool | None = None
    custom_analysis_data: dict[str, Any] | None = None


class RetellCall(_Tolerant, frozen=True, kw_only=True):
    """Retell's call object; only ``call_id`` is certain to be present."""

    call_id: Annotated[str, msgspec.Meta(min_length=1)]
    agent_id: str | None = None
    agent_version: int | None = None
    call_type: str | None = None
    call_status: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: dict[str, Any] | None = None
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    transcript: str | None = None
    transcript_object: list[Utterance] | None = None
    call_analysis: CallAnalysis | None = None
    call_cost: dict[str, Any] | None = None
    transfer_destination: str | None = None

    def __post_init__(self) -> None:
        """``call_id`` and a string ``metadata.call_ref`` are usable call refs (see the module's
        bounds); ``ValueError`` otherwise."""
        _require_ref("call_id", self.call_id, MAX_CALL_ID_LENGTH)
        ref = (self.metadata or {}).get("call_ref")
        if isinstance(ref, str) and ref:
            _require_ref("metadata.call_ref", ref)

    def call_ref(self) -> str:
        """ringlog's call ref: ``metadata["call_ref"]``, else ``retell:<call_id>``
        (:func:`call_ref_for`)."""
        return call_ref_for(self.call_id, self.metadata)


def _require_ref(name: str, value: str, max_length: int = MAX_REF_LENGTH) -> None:
    problem = ref_problem(value, max_length)
    if problem is not None:
        raise ValueError(f"{name} {problem}")


class AsSent(
    EventModel, frozen=True, dict=True, gc=True, omit_defaults=True, forbid_unknown_fields=False
):
    """A Retell body as an event: the typed view, and beside it (in the instance's ``__dict__``)
    the body as sent, or the record it was decoded from until someone asks for the body."""

    @classmethod
    def from_body(cls, body: Payload) -> Self:
        """Read ``body`` (a parsed Retell body) leniently and keep it as sent.

        Raises ``msgspec.ValidationError`` naming the field (never its value) when the body
        does not fit the model or breaks the module's bounds.
        """
        payload = msgspec.convert(body, cls, strict=False)
        payload.__dict__["_wire"] = body
        return payload

    def keep_record(self, record: bytes) -> None:
        """This payload was decoded from the envelope ``record``: its body as sent is that
        record's ``payload``, parsed only when asked for (most readers need the typed view)."""
        self.__dict__["_record"] = record

    def to_wire(self) -> dict[str, Any]:
        """Exactly the fields Retell sent (known and unknown), nothing ringlog added.

        The one dict this event keeps: read it, do not change it. An event constructed in
        code (no body) gives the fields that differ from their defaults.
        """
        kept = self.__dict__
        wire: dict[str, Any] | None = kept.get("_wire")
        if wire is None:
            record = kept.get("_record")
            if record is not None:
                wire = orjson.loads(record)["payload"]
            else:
                wire = msgspec.to_builtins(self, builtin_types=WIRE_TYPES)
            kept["_wire"] = wire
        return wire


class RetellWebhook(AsSent, frozen=True, kw_only=True):
    """A Retell call-event webhook body, as delivered (version 2: ``event`` + ``call``)."""

    topic: ClassVar[str] = "calls"
    schema_version: ClassVar[int] = 2
    retell_event: ClassVar[str]

    event: str
    call: RetellCall

    def partition_key(self) -> str:
        """The call's ref (:meth:`RetellCall.call_ref`)."""
        return self.call.call_ref()

    def dedupe_key(self) -> str:
        """``call_id:event``; ``transcript_updated`` adds a digest of the transcript so far.

        Retell sends no event id, and retries a delivery up to 3 times: two deliveries with the
        same key are the same event. The digest covers ``transcript`` when present, else
        ``transcript_object`` (16 hex digits of SHA-256).
        """
        key = f"{self.call.call_id}:{self.event}"
        if self.event == "transcript_updated":
            call = self.call
            if call.transcript is not None:
                text = call.transcript.encode()
            else:
                sent = self.to_wire().get("call", {})
                utterances = {k: v for k, v in sent.items() if k == "transcript_object"}
                text = orjson.dumps(utterances, option=orjson.OPT_SORT_KEYS)
            key = f"{key}:{hashlib.sha256(text).hexdigest()[:16]}"
        return key


def dedupe_key(payload: RetellWebhook) -> str:
    """The idempotency key of a Retell webhook delivery (see :meth:`RetellWebhook.dedupe_key`)."""
    return payload.dedupe_key()


@REGISTRY.register
class RetellCallStarted(RetellWebhook, frozen=True, kw_only=True):
    """A call connected (never sent for calls that fail to dial)."""

    event_type: ClassVar[str] = "retell.call_started"
    retell_event: ClassVar[str] = "call_started"


@REGISTRY.register
class RetellCallEnded(RetellWebhook, frozen=True, kw_only=True):
    """A call ended, transferred or errored; every field but the analysis."""

    event_type: ClassVar[str] = "retell.call_ended"
    retell_event: ClassVar[str] = "call_ended"


@REGISTRY.register
class RetellCallAnalyzed(RetellWebhook, frozen=True, kw_only=True):
    """Post-call analysis is complete; the full call with ``call_analysis``."""

    event_type: ClassVar[str] = "retell.call_analyzed"
    retell_event: ClassVar[str] = "call_analyzed"


@REGISTRY.register
class RetellTranscriptUpdated(RetellWebhook, frozen=True, kw_only=True):
    """A turn-taking transcript update, plus a final one when the call ends."""

    event_type: ClassVar[str] = "retell.transcript_updated"
    retell_event: ClassVar[str] = "transcript_updated"


@REGISTRY.register
class RetellTransferStarted(RetellWebhook, frozen=True, kw_only=True):
    """A transfer was initiated."""

    event_type: ClassVar[str] = "retell.transfer_started"
    retell_event: ClassVar[str] = "transfer_started"


@REGISTRY.register
class RetellTransferBridged(RetellWebhook, frozen=True, kw_only=True):
    """A transfer bridged successfully."""

    event_type: ClassVar[str] = "retell.transfer_bridged"
    retell_event: ClassVar[str] = "transfer_bridged"


@REGISTRY.register
class RetellTransferCancelled(RetellWebhook, frozen=True, kw_only=True):
    """A transfer was cancelled or failed to connect."""

    event_type: ClassVar[str] = "retell.transfer_cancelled"
    retell_event: ClassVar[str] = "transfer_cancelled"


@REGISTRY.register
class RetellTransferEnded(RetellWebhook, frozen=True, kw_only=True):
    """The transfer leg ended."""

    event_type: ClassVar[str] = "retell.transfer_ended"
    retell_event: ClassVar[str] = "transfer_ended"


#: Retell's event name (``call_started`` …) to the model of its webhook body.
WEBHOOK_EVENTS: dict[str, type[RetellWebhook]] = {
    m.retell_event: m
    for m in (
        RetellCallStarted,
        RetellCallEnded,
        RetellCallAnalyzed,
        RetellTranscriptUpdated,
        RetellTransferStarted,
        RetellTransferBridged,
        RetellTransferCancelled,
        RetellTransferEnded,
    )
}

#: JSON Schema of the legacy body (version 1): ``data`` where ``call`` is now.
LEGACY_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "object"}},
    "required": ["event", "data"],
    "additionalProperties": True,
}


def data_to_call(payload: Payload) -> Payload:
    """Upcast v1 → v2: the legacy ``data`` key is read as ``call``; nothing else changes."""
    body = {k: v for k, v in payload.items() if k != "data"}
    body["call"] = payload["data"]
    return body


for _model in WEBHOOK_EVENTS.values():
    REGISTRY.upcaster(_model.event_type, 1, legacy_schema=LEGACY_BODY_SCHEMA)(data_to_call)


class InboundCall(_Tolerant, frozen=True, kw_only=True):
    """What Retell knows about an inbound call before it is answered."""

    from_number: str
    to_number: str
    agent_id: str | None = None
    agent_version: int | None = None
    call_id: str | None = None

    def __post_init__(self) -> None:
        """A ``call_id``, when given, is a usable call ref (see the module's bounds)."""
        if self.call_id:
            _require_ref("call_id", self.call_id, MAX_CALL_ID_LENGTH)


@REGISTRY.register
class RetellCallInbound(AsSent, frozen=True, kw_only=True):
    """Retell's inbound-call webhook: a call is ringing and waits for ringlog's answer."""

    topic: ClassVar[str] = "calls"
    event_type: ClassVar[str] = "retell.call_inbound"
    schema_version: ClassVar[int] = 1

    event: str = "call_inbound"
    call_inbound: InboundCall

    def partition_key(self) -> str:
        """The ref ringlog gives the ringing call (:func:`call_ref_for`): ``retell:<call_id>``
        when Retell gave a call id, else a freshly minted ``in_<hex>``, a new one on every call
        of this method. Whoever appends the event answers Retell with the key it was appended
        under, so the call's later events carry that ref in ``metadata``."""
        return call_ref_for(self.call_inbound.call_id, mint=mint_call_ref)

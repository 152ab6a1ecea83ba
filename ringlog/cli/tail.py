"""``ringlog tail``: follow topics live, one readable line per event.

Each line is ``time  topic/partition:offset  type  key  summary``. The summary is the
payload's fields as ``name=value`` pairs, without names, dates of birth and what was said
(the warehouse's own rule, :func:`ringlog.projections.warehouse.personal.withhold`) unless
``--text`` asks for them, and phone numbers are masked (:func:`ringlog.logs.mask_phone`)
always, the key included. Records that are not events (quarantined input) are shown by
their headers.

Reading starts at the log's exact end (or, with ``--from-beginning``, its start) in no
consumer group, so nothing is committed. SIGINT and SIGTERM stop it at once; ``--limit N``
after ``N`` lines.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import typer

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from ringlog.config import Settings
    from ringlog.schemas import Envelope
    from ringlog.streams.consumer import LogRecord

#: The longest summary shown (longer ones are cut, after masking).
SUMMARY_CHARS = 160
#: Headers every event carries; the others (a quarantine reason, a dead-letter error) are shown.
_ROUTINE_HEADERS = frozenset({"ringlog-type", "ringlog-version", "ringlog-event-id"})
#: How long one fetch waits before the stop flag is looked at again.
_POLL_MS = 200


def tail(
    topic: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a list option
        [],
        "--topic",
        "-t",
        help="A topic to follow, by its declared name (calls, dialog…); repeat for several. "
        "Default: every declared topic.",
    ),
    call: str | None = typer.Option(
        None, "--call", help="Only the events of this call ref (its key or correlation id)."
    ),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the first record instead of the end."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many events."),
    text: bool = typer.Option(
        False,
        "--text",
        help="Also show what was said, names and dates of birth (phone numbers stay masked).",
    ),
) -> None:
    """Follow the log live: one line per event (time, topic, type, key, summary), phone
    numbers masked; Ctrl-C or SIGTERM stops."""
    from ringlog.cli.output import fail, quiet_libraries
    from ringlog.config import Settings

    quiet_libraries()
    settings = Settings.load()
    try:
        topics = physical_topics(settings, topic)
    except ValueError as exc:
        fail(str(exc))
    try:
        asyncio.run(
            follow(
                settings,
                topics,
                call=call,
                from_beginning=from_beginning,
                limit=limit,
                personal=text,
            )
        )
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        sys.stderr.close()


def physical_topics(settings: Settings, names: Sequence[str]) -> list[str]:
    """The physical names of the declared topics in ``names`` (all of them when empty);
    ``ValueError`` names an undeclared one and the choices."""
    from ringlog.streams.topics import BY_NAME, TOPICS

    if not names:
        return [settings.topic(t.name) for t in TOPICS]
    prefix = settings.kafka.topic_prefix
    chosen = []
    for name in names:
        logical = name.removeprefix(prefix) if name.startswith(prefix) else name
        if logical not in BY_NAME:
            raise ValueError(f"no topic {name!r} is declared; choose from {', '.join(BY_NAME)}")
        chosen.append(settings.topic(logical))
    return list(dict.fromkeys(chosen))


async def follow(
    settings: Settings,
    topics: Sequence[str],
    *,
    call: str | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    personal: bool = False,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Print the events of ``topics`` as they arrive until ``stop`` is set (by SIGINT or
    SIGTERM when not given), or ``limit`` lines were printed; return how many were."""
    from aiokafka.errors import KafkaError

    from ringlog.errors import BrokerUnavailable
    from ringlog.streams.consumer import standalone_consumer, to_log_record

    out = out or sys.stdout
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    kafka = settings.kafka
    consumer = standalone_consumer(kafka, "tail")
    try:
        await asyncio.wait_for(consumer.start(), kafka.request_timeout_ms / 1000)
        partitions = await _position(consumer, settings, topics, call, from_beginning)
        shown = ", ".join(t.removeprefix(kafka.topic_prefix) for t in topics)
        start = "the beginning" if from_beginning else "the end"
        only = f", call {call}" if call else ""
        sys.stderr.write(
            f"following {shown} from {start}{only} ({len(partitions)} partitions); Ctrl-C stops\n"
        )
        sys.stderr.flush()
        matches = _matcher(call)
        printed = 0
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=_POLL_MS)
            records = sorted(
                (to_log_record(m) for batch in fetched.values() for m in batch),
                key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset),
            )
            lines = []
            for record in records:
                if not matches(record):
                    continue
                lines.append(line(record, prefix=kafka.topic_prefix, personal=personal))
                printed += 1
                if limit is not None and printed >= limit:
                    stop.set()
                    break
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
        return printed
    except BrokenPipeError:
        raise
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()


async def _position(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    topics: Sequence[str],
    call: str | None,
    from_beginning: bool,
) -> list[TopicPartition]:
    """Assign the partitions to read (for ``call``, only its partition of the topics keyed
    by call ref) and seek each to its start or its exact end."""
    from aiokafka import TopicPartition

    from ringlog.cli.output import fail
    from ringlog.streams.offsets import end_offsets
    from ringlog.streams.partitioner import partition_for
    from ringlog.streams.topics import BY_NAME

    chosen: list[TopicPartition] = []
    for topic in topics:
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        if not numbers:
            fail(f"topic {topic} does not exist: run `ringlog topics ensure`")
        spec = BY_NAME.get(topic.removeprefix(settings.kafka.topic_prefix))
        if call is not None and spec is not None and spec.key == "call ref":
            numbers = [partition_for(call.encode(), numbers, numbers)]
        chosen.extend(TopicPartition(topic, n) for n in numbers)
    consumer.assign(chosen)
    if from_beginning:
        await consumer.seek_to_beginning(*chosen)
    else:
        ends = await end_offsets(settings.kafka, topics)
        for tp in chosen:
            consumer.seek(tp, ends.get((tp.topic, tp.partition), 0))
    return chosen


def _matcher(call: str | None) -> Callable[[LogRecord], bool]:
    """Whether a record belongs to ``call``: its key, its correlation id or its payload's
    call ref (session events are keyed by number) names it."""
    if call is None:
        return lambda _record: True
    wanted = call.encode()

    def matches(record: LogRecord) -> bool:
        e = record.envelope
        if e is None:
            return record.key == wanted
        return call in (e.key, e.correlation_id, getattr(e.payload, "call_ref", None))

    return matches


def line(record: LogRecord, *, prefix: str, personal: bool = False) -> str:
    """One line for ``record``: ``time  topic/partition:offset  type  key  summary``."""
    from ringlog.logs import mask_phone

    envelope = record.envelope
    where = f"{record.topic.removeprefix(prefix)}/{record.partition}:{record.offset}"
    extra = _header_fields(record.headers)
    if envelope is None:
        when = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        kind = _header(record.headers, "ringlog-type") or "(not an event)"
        key = (record.key or b"").decode(errors="replace")
        fields = [*extra, ("bytes", len(record.value))]
        if record.error is not None:
            fields.append(("error", record.error.reason))
    else:
        when, kind, key = envelope.recorded_at, envelope.type, envelope.key
        fields = [*extra, *payload_fields(envelope, personal=personal)]
    text = summary(fields)
    return f"{stamp(when)}  {where:<16} {kind:<26} {mask_phone(key)}  {text}".rstrip()


def summary(fields: Iterable[tuple[str, Any]]) -> str:
    """``name=value`` pairs, phone numbers masked, cut at :data:`SUMMARY_CHARS`."""
    from ringlog.logs import mask_phone

    text = mask_phone(" ".join(f"{name}={_value(value)}" for name, value in fields))
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1] + "…"
    return text


def payload_fields(envelope: Envelope, *, personal: bool = False) -> list[tuple[str, Any]]:
    """The payload's fields worth a glance: nothing personal unless ``personal``, no empty
    value, no field repeating the key or the type; Retell's call object flattened into the
    line (``call_status=ended``), its telling fields first."""
    if not personal:
        from ringlog.projections.warehouse.personal import withhold

        envelope = withhold(envelope)
    data = orjson.loads(orjson.dumps(envelope.payload.to_wire()))  # as JSON shows it
    fields = [
        (name, value)
        for name, value in _flatten(data)
        if value != envelope.key and not (name == "event" and envelope.type.endswith(value))
    ]
    return sorted(fields, key=lambda field: field[0] not in FIRST)


#: Fields shown before the others (Retell's call object leads with long ids otherwise).
FIRST = frozenset(
    {
        "call_status",
        "direction",
        "from_number",
        "to_number",
        "duration_ms",
        "disconnection_reason",
        "transfer_destination",
    }
)
#: Objects whose fields are shown without the object's name (a webhook's ``call``).
_INLINE = frozenset({"call", "call_inbound"})


def _flatten(data: dict[str, Any], parent: str = "") -> Iterable[tuple[str, Any]]:
    for name, value in data.items():
        if value in ({}, [], "", None):
            continue
        path = f"{parent}{name}"
        if isinstance(value, dict):
            yield from _flatten(value, "" if not parent and name in _INLINE else f"{path}.")
        else:
            yield path, value


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not any(c.isspace() or c == '"' for c in value) else _json(value)
    return _json(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def stamp(when: datetime) -> str:
    """``when`` in UTC to the millisecond, as every line of the engineer's tools shows it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return None


def _header_fields(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """Headers other than the routine ones, named without the ``ringlog-`` prefix."""
    return [
        (name.removeprefix("ringlog-"), value.decode(errors="replace"))
        for name, value in headers
        if name not in _ROUTINE_HEADERS
    ]

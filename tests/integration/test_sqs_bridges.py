"""The SQS bridges against the moto server, the broker (Tansu) and PostgreSQL.

Bridge in: N messages become N events and the queue empties; a bridge killed (SIGKILL)
between the log's acknowledgement and the delete appends that batch again on restart, with
the same event ids and call refs, so consumers deduplicate it by the SQS MessageId; a Retell
body through SQS is the webhook's event (same key, payload as written, dedupe key, fold); a
message that cannot be parsed is kept on ``quarantine`` with its attributes and deleted.
Bridge out: a FIFO queue receives each ABT event once although the bridge crashed between
SQS's answer and its checkpoint; a record SQS refuses stops the bridge at that record, with
nothing checkpointed or committed past it, again after a restart. Bad input: a message too
large, an unknown ``--as``, a queue that does not exist get a clear error and nothing is
deleted; the credentials never appear in what the commands print. ``ringlog run`` bridges
its queues on the embedded moto server.

Every test has its own topic prefix, consumer group and queues (deleted afterwards).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ringlog.api.app import create_app
from ringlog.api.signature import sign
from ringlog.bridges.checkpoints import BridgeCheckpoints
from ringlog.bridges.entries import Offset
from ringlog.bridges.inbound import BridgeMetrics, InboundBridge
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.messages import HEADER_ATTRIBUTES, HEADER_MESSAGE_ID, HEADER_QUEUE
from ringlog.bridges.outbound import QueueTarget, SendFailed, bridge_name, outbound_runner
from ringlog.bridges.sqs import SqsQueue, make_client
from ringlog.calls.state import CallState, apply
from ringlog.config import ApiSettings, RetellSettings, Settings, SqsSettings, read_stack_file
from ringlog.schemas import AbtEvent, Envelope, dedupe_key, derived_event_id
from ringlog.schemas.retell import RetellWebhook
from ringlog.streams.consumer import LogRecord
from ringlog.streams.producer import LogProducer, RecordPosition
from ringlog.streams.quarantine import HEADER_REASON, HEADER_SOURCE
from tests.support.examples import CLINIC, retell_call
from tests.support.logread import eventually, records
from tests.support.postgres import fresh_schemas
from tests.support.retell_double import RETELL_KEY
from tests.support.ringlog_run import Run, isolated_env
from tests.support.sqs_bridges import Queues, counts, drain, queues, send_all

pytestmark = pytest.mark.integration

#: Credentials the commands are given; neither may appear in anything they print.
KEY_ID = "AKIAZZZZSENTINEL0001"
SECRET = "s3cr3t-sentinel-never-logged"
#: Quick polls and retries, so each test takes seconds.
FAST = {
    "receive_wait_s": 1,
    "visibility_timeout_s": 3,
    "backoff_s": 0.05,
    "backoff_max_s": 0.5,
    "send_attempts": 3,
}


def fast(settings: Settings, **sqs: Any) -> Settings:
    """``settings`` with quick SQS polls and retries (and ``sqs`` changes)."""
    return settings.model_copy(update={"sqs": settings.sqs.model_copy(update={**FAST, **sqs})})


def command_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``ringlog`` child process: this test's topics, quick polls,
    the sentinel credentials."""
    return {
        **os.environ,
        "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "RINGLOG_SQS_RECEIVE_WAIT_S": "1",
        "RINGLOG_SQS_VISIBILITY_TIMEOUT_S": "3",
        "RINGLOG_SQS_IN_POLLERS": "1",
        "RINGLOG_SQS_ACCESS_KEY_ID": KEY_ID,
        "RINGLOG_SQS_SECRET_ACCESS_KEY": SECRET,
        **extra,
    }


def python_command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` to its end (60 s at most), its output captured."""
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60
    )


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``ringlog bridge ARGS`` in a child process, its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ringlog", "bridge", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def assert_no_credentials(*outputs: str) -> None:
    for output in outputs:
        assert KEY_ID not in output
        assert SECRET not in output


def header(record: LogRecord, name: str) -> str:
    """A record's header as text (``KeyError`` when absent)."""
    return dict(record.headers)[name].decode()


def call_request(i: int, **extra: Any) -> str:
    return orjson.dumps(
        {"to_number": f"+1415555{i:04d}", "from_number": CLINIC, "patient_ref": f"p{i}", **extra}
    ).decode()


@pytest.fixture(name="sqs")
def _sqs(settings: Settings) -> Iterator[Queues]:
    with queues(settings.sqs) as made:
        yield made


async def bridge_in(
    settings: Settings,
    url: str,
    kind: InboundKind,
    until: Callable[[BridgeMetrics, str], bool],
    timeout_s: float = 45.0,
) -> BridgeMetrics:
    """Run a bridge in on ``url`` until ``until(metrics, queue name)``, then stop it."""
    queue = await SqsQueue.open(settings.sqs, url)
    metrics = BridgeMetrics()
    stop = asyncio.Event()
    producer = LogProducer(settings.kafka)
    task = asyncio.create_task(
        InboundBridge(settings, queue, kind, producer, metrics=metrics).run(stop)
    )

    async def probe() -> bool:
        if task.done():
            task.result()
            raise AssertionError("the bridge stopped by itself")
        return until(metrics, queue.name)

    try:
        await eventually(probe, bool, timeout_s=timeout_s, interval_s=0.05)
    finally:
        stop.set()
        await task
        await producer.stop()
        queue.close()
    return metrics


# -- bridge in ------------------------------------------------------------------------------


async def test_n_call_requests_in_become_n_events_and_the_queue_empties(
    topics: Settings, sqs: Queues
) -> None:
    """25 call requests (3 receives of 10 at most, 2 pollers) are 25 ``call.requested`` on
    ``calls``, each carrying its MessageId (idempotency key, header) and an event id and
    call ref derived from it; every message is deleted."""
    settings = fast(topics, in_pollers=2)
    url = sqs.make()
    ids = send_all(sqs.client, url, [call_request(i) for i in range(25)])

    await bridge_in(
        settings, url, InboundKind.CALL_REQUEST, lambda m, q: m.seen(q, "deleted") >= 25
    )

    found = await records(settings.kafka, settings.topic("calls"))
    assert len(found) == 25
    name = url.rsplit("/", 1)[1]
    by_message = {header(r, HEADER_MESSAGE_ID): r for r in found}
    assert set(by_message) == set(ids)
    for message_id, record in by_message.items():
        envelope = record.envelope
        assert envelope is not None
        assert envelope.type == "call.requested"
        assert envelope.payload.idempotency_key == message_id  # type: ignore[attr-defined]
        assert envelope.event_id == derived_event_id("call.requested", f"sqs:{name}", message_id)
        assert envelope.key == f"call_{envelope.event_id.hex}"
        assert envelope.source == f"sqs:{name}"
        assert envelope.payload.agent_id == settings.retell.agent_id  # type: ignore[attr-defined]
        assert header(record, HEADER_QUEUE) == name
    assert counts(sqs.client, url) == (0, 0)


async def test_killed_between_append_and_delete_the_batch_comes_back_and_is_deduplicated(
    topics: Settings, sqs: Queues, tmp_path: Path
) -> None:
    """The bridge process is SIGKILLed right after the log acknowledged its first batch, before
    the delete. Restarted (``ringlog bridge sqs-in``), it appends that batch again once the
    messages are visible again: N + k records, but N message ids, N event ids and N call refs
    (each message id always gives the same id and ref), and folding the calls as consumers do
    yields N requested calls; the queue ends empty."""
    settings = topics
    url = sqs.make()
    n = 14
    ids = send_all(sqs.client, url, [call_request(i) for i in range(n)])
    env = command_env(settings)

    killed = await asyncio.to_thread(
        python_command,
        ["-m", "tests.support.sqs_bridges", "--queue", url, "--as", "call-request"],
        env,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    first = await records(settings.kafka, settings.topic("calls"))
    k = len(first)
    assert 1 <= k <= 10
    visible, in_flight = counts(sqs.client, url)
    assert visible + in_flight == n  # nothing was deleted

    log_path = tmp_path / "bridge.log"
    restarted = spawn(["sqs-in", "--queue", url, "--as", "call-request"], env, log_path)
    try:

        async def settled() -> tuple[int, tuple[int, int]]:
            found = await records(settings.kafka, settings.topic("calls"))
            return len(found), counts(sqs.client, url)

        await eventually(settled, lambda s: s == (n + k, (0, 0)), timeout_s=60)
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=15) == 0
    output = log_path.read_text()
    assert_no_credentials(killed.stdout, killed.stderr, output)

    found = await records(settings.kafka, settings.topic("calls"))
    assert len(found) == n + k
    per_message: dict[str, set[tuple[str, str]]] = {}
    for record in found:
        assert record.envelope is not None
        per_message.setdefault(header(record, HEADER_MESSAGE_ID), set()).add(
            (str(record.envelope.event_id), record.envelope.key)
        )
    assert set(per_message) == set(ids)
    assert all(len(identities) == 1 for identities in per_message.values())
    states: dict[str, CallState] = {}
    for record in found:
        assert record.envelope is not None
        states[record.envelope.key] = apply(states.get(record.envelope.key), record.envelope)
    assert len(states) == n
    assert all(s.request is not None and s.dispatch == "pending" for s in states.values())


class HeldAfterAppend(InboundBridge):
    """Holds each batch between the log's acknowledgement and the delete until released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[str] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def on_appended(self, messages: Any) -> None:
        self.held += [m.message_id for m in messages]
        self.holding.set()
        await self.release.wait()


async def test_messages_in_flight_stay_invisible_past_the_visibility_timeout(
    topics: Settings, sqs: Queues
) -> None:
    """A batch held after its append for twice the visibility timeout (3 s) is never
    handed to another receiver: the bridge extends its visibility while it is in flight.
    Released, it is deleted; each message was appended once."""
    settings = fast(topics, in_pollers=1)
    url = sqs.make()
    ids = send_all(sqs.client, url, [call_request(i) for i in range(5)])
    queue = await SqsQueue.open(settings.sqs, url)
    producer = LogProducer(settings.kafka)
    bridge = HeldAfterAppend(settings, queue, InboundKind.CALL_REQUEST, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.holding.wait(), 30)
        assert sorted(bridge.held) == sorted(ids)
        held_since = time.monotonic()
        while time.monotonic() - held_since < 2 * settings.sqs.visibility_timeout_s:
            other = await asyncio.to_thread(
                sqs.client.receive_message, QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            assert other.get("Messages", []) == [], "a message in flight was handed out"
        assert counts(sqs.client, url) == (0, 5)
        bridge.release.set()
        await eventually(lambda: asyncio.to_thread(counts, sqs.client, url), lambda c: c == (0, 0))
    finally:
        bridge.release.set()
        stop.set()
        await task
        await producer.stop()
        queue.close()
    found = await records(settings.kafka, settings.topic("calls"))
    assert sorted(header(r, HEADER_MESSAGE_ID) for r in found) == sorted(ids)


async def test_a_failed_append_hands_the_messages_back_at_once_and_deletes_nothing(
    topics: Settings, sqs: Queues
) -> None:
    """With the broker unreachable every append fails: the messages are made visible again at
    once (visibility 0, not the 30 s timeout), so they are received and tried again within
    seconds, and none is deleted. A bridge on the real broker then appends each once."""
    settings = fast(topics, visibility_timeout_s=30, in_pollers=1)
    url = sqs.make()
    ids = send_all(sqs.client, url, [call_request(i) for i in range(4)])
    gone = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap": "127.0.0.1:1", "request_timeout_ms": 300}
            )
        }
    )
    metrics = await bridge_in(
        gone, url, InboundKind.CALL_REQUEST, lambda m, q: m.seen(q, "failed") >= 3 * 4
    )
    assert metrics.seen(url.rsplit("/", 1)[1], "deleted") == 0
    visible, in_flight = counts(sqs.client, url)
    assert visible + in_flight == 4

    await eventually(lambda: asyncio.to_thread(counts, sqs.client, url), lambda c: c == (4, 0))
    await bridge_in(settings, url, InboundKind.CALL_REQUEST, lambda m, q: m.seen(q, "deleted") >= 4)
    found = await records(settings.kafka, settings.topic("calls"))
    assert sorted(header(r, HEADER_MESSAGE_ID) for r in found) == sorted(ids)


@pytest.mark.parametrize("wrapper", ["call", "data"])
async def test_retell_events_through_sqs_are_the_webhooks_events(
    topics: Settings, sqs: Queues, wrapper: str
) -> None:
    """The same ``call_ended`` body through the signed webhook and twice through SQS: three
    records with the same key (call ref), type, payload as written (the legacy ``data`` key
    included) and dedupe key; folding all three gives the state of one delivery."""
    settings = topics.model_copy(
        update={"retell": RetellSettings(api_key=RETELL_KEY), "api": ApiSettings(keys=("k",))}
    )
    body = orjson.dumps({"event": "call_ended", wrapper: retell_call("call_ended")})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ringlog") as client:
            signature = sign(body, RETELL_KEY, int(time.time() * 1000))
            answer = await client.post(
                "/v1/webhooks/retell",
                content=body,
                headers={"x-retell-signature": signature, "content-type": "application/json"},
            )
            assert answer.status_code == 204, answer.text
    url = sqs.make()
    send_all(sqs.client, url, [body.decode(), body.decode()])

    await bridge_in(
        fast(settings), url, InboundKind.RETELL_EVENT, lambda m, q: m.seen(q, "deleted") >= 2
    )

    found = await records(settings.kafka, settings.topic("calls"))
    assert len(found) == 3
    (webhook,) = [r for r in found if r.envelope and r.envelope.source == "retell-webhook"]
    bridged = [r for r in found if r is not webhook]
    assert webhook.envelope is not None
    wire = orjson.loads(webhook.value)
    for record in bridged:
        envelope = record.envelope
        assert envelope is not None
        assert envelope.source.startswith("sqs:")
        assert record.key == webhook.key
        assert envelope.key == webhook.envelope.key
        assert envelope.type == webhook.envelope.type
        assert dict(record.headers)["ringlog-version"] == dict(webhook.headers)["ringlog-version"]
        assert orjson.loads(record.value)["payload"] == wire["payload"]
        assert isinstance(envelope.payload, RetellWebhook)
        assert dedupe_key(envelope.payload) == dedupe_key(webhook.envelope.payload)  # type: ignore[arg-type]
    assert bridged[0].envelope and bridged[1].envelope
    assert bridged[0].envelope.event_id != bridged[1].envelope.event_id  # two messages
    once = apply(None, webhook.envelope)
    state = None
    for record in found:
        assert record.envelope is not None
        state = apply(state, record.envelope)
    assert state is not None
    assert msgspec.structs.replace(state, events=once.events) == once
    assert counts(sqs.client, url) == (0, 0)


async def test_a_poison_message_is_quarantined_with_its_attributes_then_deleted(
    topics: Settings, sqs: Queues
) -> None:
    """A body that is not JSON and one that is not a call request are appended to
    ``quarantine`` byte for byte, with the reason, the source queue, the MessageId and the
    message's attributes (binary ones base64), then deleted; nothing reaches ``calls``."""
    settings = fast(topics)
    url = sqs.make()
    attributes = {
        "origin": {"DataType": "String", "StringValue": "legacy-crm"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    bodies = ["not json {", '{"to_number": "12", "from_number": "+14155559876"}']
    ids = send_all(sqs.client, url, bodies, MessageAttributes=attributes)

    await bridge_in(
        settings,
        url,
        InboundKind.CALL_REQUEST,
        lambda m, q: m.seen(q, "quarantined") >= 2 and m.seen(q, "deleted") >= 2,
    )

    kept = await records(settings.kafka, settings.topic("quarantine"))
    assert sorted(r.value for r in kept) == sorted(b.encode() for b in bodies)
    name = url.rsplit("/", 1)[1]
    for record in kept:
        assert record.key == f"sqs:{name}".encode()
        assert header(record, HEADER_SOURCE) == f"sqs:{name}"
        assert header(record, HEADER_REASON)
        assert header(record, HEADER_MESSAGE_ID) in ids
        saved = orjson.loads(header(record, HEADER_ATTRIBUTES))
        assert saved["MessageId"] == header(record, HEADER_MESSAGE_ID)
        assert saved["MessageAttributes"]["origin"]["StringValue"] == "legacy-crm"
        assert (
            saved["MessageAttributes"]["blob"]["BinaryValue"]
            == base64.b64encode(b"\x00\x01").decode()
        )
        assert "SentTimestamp" in saved["Attributes"]
    assert "12" not in header(kept[0], HEADER_REASON)  # reasons name fields, never values
    assert await records(settings.kafka, settings.topic("calls")) == []
    assert counts(sqs.client, url) == (0, 0)


# -- bad input ------------------------------------------------------------------------------


def test_a_message_too_large_for_an_event_is_refused_with_a_clear_error_and_kept(
    topics: Settings, sqs: Queues, tmp_path: Path
) -> None:
    """With call requests limited to 1,024 bytes (the API's limit), a 2 KB message is logged
    as refused (its id, its size, the limit) on every receive and never deleted, while the
    small message beside it is appended and deleted."""
    url = sqs.make()
    big = call_request(1, metadata={"note": "x" * 2000})
    ids = send_all(sqs.client, url, [big, call_request(2)])
    log_path = tmp_path / "bridge.log"
    env = command_env(topics, RINGLOG_API_MAX_BODY_BYTES="1024")
    bridge = spawn(["sqs-in", "--queue", url, "--as", "call-request"], env, log_path)
    try:
        deadline = time.monotonic() + 30
        while "SQS message refused" not in log_path.read_text() or counts(sqs.client, url) != (
            0,
            1,
        ):
            assert bridge.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(timeout=15) == 0
    output = log_path.read_text()
    (line,) = [line for line in output.splitlines() if "SQS message refused" in line][:1]
    refused = orjson.loads(line)
    assert refused["level"] == "error"
    assert refused["message_id"] == ids[0]
    assert (
        f"is {len(big)} bytes, larger than the 1024 bytes a call-request may have"
        in (refused["reason"])
    )
    assert_no_credentials(output)
    visible, in_flight = counts(sqs.client, url)
    assert visible + in_flight == 1  # the big one is still there
    found = asyncio.run(records(topics.kafka, topics.topic("calls")))
    assert [header(r, HEADER_MESSAGE_ID) for r in found] == [ids[1]]


def test_an_unknown_kind_is_refused_before_anything_is_received(
    topics: Settings, sqs: Queues
) -> None:
    """``--as fax`` exits 2 naming the kinds; the queue's message was not even received."""
    url = sqs.make()
    send_all(sqs.client, url, [call_request(1)])
    done = subprocess.run(
        [sys.executable, "-m", "ringlog", "bridge", "sqs-in", "--queue", url, "--as", "fax"],
        env=command_env(topics),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", done.stderr).split())  # typer's box, unwrapped
    assert "Invalid value for '--as'" in said
    assert "'fax' is not one of 'call-request', 'retell-event'" in said
    assert counts(sqs.client, url) == (1, 0)
    assert_no_credentials(done.stdout, done.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["sqs-in", "--as", "call-request", "--queue"],
        ["sqs-out", "--topic", "abt", "--queue"],
    ],
)
def test_a_queue_that_does_not_exist_is_one_clear_error(
    topics: Settings, sqs: Queues, args: list[str]
) -> None:
    """A missing queue (by name, and by URL) exits 2 with one line naming it and the
    endpoint; nothing is received, appended or deleted; the credentials are not printed."""
    existing = sqs.make()
    missing_url = existing.rsplit("/", 1)[0] + "/t-no-such-queue"
    for queue in ("t-no-such-queue", missing_url):
        done = subprocess.run(
            [sys.executable, "-m", "ringlog", "bridge", *args, queue],
            env=command_env(topics),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, done.stderr
        assert f"SQS queue '{queue}' does not exist at {topics.sqs.endpoint_url}" in errors[0]
        assert "nothing was received or deleted" in errors[0]
        assert_no_credentials(done.stdout, done.stderr)


# -- bridge out -----------------------------------------------------------------------------


class Crash(BaseException):
    """Ends the runner at once, as a kill would: nothing after it runs."""


class CrashAfterSend(QueueTarget):
    """Crashes the first time SQS accepted messages, before the checkpoint is written."""

    sent: list[Offset] | None = None

    async def on_sent(self, accepted: Any) -> None:
        if accepted and self.sent is None:
            self.sent = list(accepted)
            raise Crash


async def append_abt(settings: Settings, events: list[AbtEvent]) -> list[RecordPosition]:
    envelopes = [Envelope.new(e, source="test", event_id=e.abt_id) for e in events]
    async with LogProducer(settings.kafka) as log:
        return await log.append_many(envelopes)


def abt(ref: str, i: int, **attributes: str) -> AbtEvent:
    names = ("voice_call_initiated", "call_started", "call_completed")
    return AbtEvent(
        abt_id=derived_event_id("test-abt", ref, str(i)),
        name=names[i % 3],  # type: ignore[arg-type]
        call_ref=ref,
        attributes=attributes,
    )


@pytest.fixture(name="crm_url")
def _crm_url(unique: str) -> Iterator[str]:
    """A PostgreSQL schema of this test's own: where the bridge out keeps its checkpoint."""
    with fresh_schemas(f"bridge_{unique}") as (url,):
        yield url


@pytest.fixture(name="checkpoints")
async def _checkpoints(crm_url: str) -> AsyncIterator[BridgeCheckpoints]:
    store = BridgeCheckpoints.open(crm_url)
    yield store
    store.close()


async def committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (absent: none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(6)]
        found = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def test_bridge_out_to_a_fifo_queue_delivers_each_abt_event_once_across_a_restart(
    topics: Settings, sqs: Queues, checkpoints: BridgeCheckpoints, group_id: str
) -> None:
    """40 ABT events of 8 calls. The first bridge crashes after SQS accepted its first
    messages and before its checkpoint; the restarted one sends them again (the checkpoint
    says so) and SQS's FIFO deduplication (topic-partition-offset) drops them: the queue
    holds each event exactly once, each call's events in log order in the call's group."""
    settings = fast(topics)
    url = sqs.make(fifo=True)
    events = [abt(f"call_{c}", i) for i in range(5) for c in range(8)]
    positions = await append_abt(settings, events)
    topic = settings.topic("abt")
    queue = await SqsQueue.open(settings.sqs, url)
    try:
        crashing = CrashAfterSend(queue, checkpoints, max_batch_bytes=settings.sqs.max_batch_bytes)
        first = outbound_runner(
            settings, queue, checkpoints, topics=[topic], group_id=group_id, target=crashing
        )
        with pytest.raises(Crash):
            await first.run(asyncio.Event())
        assert crashing.sent
        assert await checkpoints.load(bridge_name(queue)) == {}  # nothing checkpointed

        second = outbound_runner(settings, queue, checkpoints, topics=[topic], group_id=group_id)
        await second.run_until_caught_up(timeout_s=60)
    finally:
        queue.close()

    received = drain(sqs.client, url)
    by_event = [m["MessageAttributes"]["ringlog-event-id"]["StringValue"] for m in received]
    assert sorted(by_event) == sorted(str(e.abt_id) for e in events)  # each once
    where = {str(e.abt_id): p for e, p in zip(events, positions, strict=True)}
    for message in received:
        event_id = message["MessageAttributes"]["ringlog-event-id"]["StringValue"]
        position = where[event_id]
        dedup = f"{position.topic}-{position.partition}-{position.offset}"
        assert message["Attributes"]["MessageDeduplicationId"] == dedup
        body = orjson.loads(message["Body"])
        assert body["event_id"] == event_id
        assert message["Attributes"]["MessageGroupId"] == body["key"]
    for ref in {e.call_ref for e in events}:
        in_queue = [
            m["MessageAttributes"]["ringlog-event-id"]["StringValue"]
            for m in received
            if m["Attributes"]["MessageGroupId"] == ref
        ]
        assert in_queue == [str(e.abt_id) for e in events if e.call_ref == ref]
    done = await checkpoints.load(bridge_name(queue))
    ends: dict[tuple[str, int], int] = {}
    for p in positions:
        ends[(p.topic, p.partition)] = max(ends.get((p.topic, p.partition), 0), p.offset + 1)
    assert done == ends


async def test_a_send_failure_stops_the_bridge_and_nothing_is_committed_past_it(
    topics: Settings, sqs: Queues, checkpoints: BridgeCheckpoints, group_id: str
) -> None:
    """A queue taking messages of 1,024 bytes at most; one call's six ABT events, the fourth
    2 KB. The bridge sends the first three, tries the fourth ``send_attempts`` times and stops
    with :class:`SendFailed` naming its position: the checkpoint stands at it, the group's
    committed offset is not past it, the queue holds the three. Restarted, it stops at the
    same record, sending nothing again."""
    settings = fast(topics)
    url = sqs.make(MaximumMessageSize="1024")
    events = [abt("call_big", i, **({"pad": "x" * 2000} if i == 3 else {})) for i in range(6)]
    positions = await append_abt(settings, events)
    big = positions[3]
    topic = settings.topic("abt")
    queue = await SqsQueue.open(settings.sqs, url)
    try:
        for attempt in range(2):
            runner = outbound_runner(
                settings, queue, checkpoints, topics=[topic], group_id=group_id
            )
            with pytest.raises(SendFailed) as failed:
                await asyncio.wait_for(runner.run(asyncio.Event()), 60)
            assert failed.value.position == (big.topic, big.partition, big.offset)
            message = str(failed.value)
            assert f"{big.topic}-{big.partition}-{big.offset}" in message
            assert "InvalidParameterValue" in message
            stored = await checkpoints.load(bridge_name(queue))
            assert stored == {(big.topic, big.partition): big.offset}
            offsets = await committed(settings, group_id, topic)
            assert offsets.get(big.partition, 0) <= big.offset
            received = drain(sqs.client, url, quiet_s=1.0)
            expected = [str(e.abt_id) for e in events[:3]] if attempt == 0 else []
            assert [
                m["MessageAttributes"]["ringlog-event-id"]["StringValue"] for m in received
            ] == (expected)
    finally:
        queue.close()


# -- make run -------------------------------------------------------------------------------


def test_ringlog_run_bridges_the_embedded_queues(tmp_path: Path) -> None:
    """``ringlog run`` creates the three queues in its moto server and starts ``ringlog
    bridge``: a call request sent to ``ringlog-call-requests`` becomes a call the API reads
    (its ref derived from the MessageId), the worker places it through the local Retell, and
    its ABT ``voice_call_initiated`` arrives on ``ringlog-outbound``."""
    run = Run(isolated_env(tmp_path / "home"))
    try:
        run.wait_running()
        assert "bridge" in run.children(), run.output
        assert "SQS bridges: sqs-in ringlog-call-requests as call-request" in run.output
        api_key = next(
            line.split(": ", 1)[1].strip()
            for line in run.lines
            if line.startswith("API key for this run")
        )
        stack = read_stack_file(run.home)
        client = make_client(SqsSettings(**stack["sqs"]))
        try:
            url = client.get_queue_url(QueueName="ringlog-call-requests")["QueueUrl"]
            (message_id,) = send_all(client, url, [call_request(7)])
            event_id = derived_event_id("call.requested", "sqs:ringlog-call-requests", message_id)
            ref = f"call_{event_id.hex}"
            api = f"http://127.0.0.1:{run.api_port}"
            deadline = time.monotonic() + 60
            while True:
                answer = httpx.get(
                    f"{api}/v1/calls/{ref}",
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=10,
                )
                if answer.status_code == 200:
                    break
                assert time.monotonic() < deadline, (answer.status_code, answer.text)
                time.sleep(0.2)
            outbound = client.get_queue_url(QueueName="ringlog-outbound")["QueueUrl"]
            deadline = time.monotonic() + 60
            names: list[str] = []
            while "voice_call_initiated" not in names:
                assert time.monotonic() < deadline, names
                got = client.receive_message(
                    QueueUrl=outbound,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    MessageAttributeNames=["All"],
                )
                for message in got.get("Messages", []):
                    body = orjson.loads(message["Body"])
                    if body["key"] == ref:
                        names.append(body["payload"]["name"])
        finally:
            client.close()
        log = (run.home / "logs" / "bridge.log").read_text()
        assert "bridge in started" in log and "bridge out started" in log
        assert "testing" not in log  # the stack's credentials are never logged
    finally:
        run.kill()

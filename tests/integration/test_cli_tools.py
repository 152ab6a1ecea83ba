"""The engineer's commands against the real embedded stack: `dev up` makes the declared
topics, `tail` follows the log with numbers masked, `lag` sees groups and checkpoints reach the
end, `sql` reads the warehouse. (`topics list`'s exact counts: test_cli_topics.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ringlog.cli import app
from ringlog.config import HOME_ENV, Settings
from ringlog.projections.crm import crm_projection
from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import Envelope
from ringlog.streams.admin import ensure_topics, list_topics
from ringlog.streams.consumer import LogConsumer, LogRecord
from ringlog.streams.offsets import end_offsets
from ringlog.streams.producer import LogProducer, RecordPosition
from ringlog.streams.topics import TOPICS
from tests.support.examples import PHONE, REF, example_events

pytestmark = pytest.mark.integration

#: Seconds a command started as a process may take to start, or to stop when asked.
PROCESS_S = 30.0


def cli(args: Sequence[str], settings: Settings, **env: str) -> tuple[int, str, str]:
    """Run the CLI in-process for ``settings``' topic prefix; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(
        app, list(args), env={"RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix, **env}
    )
    return result.exit_code, result.stdout, result.stderr


async def append_all(settings: Settings, events: Sequence[Envelope]) -> list[RecordPosition]:
    """Append ``events`` concurrently, so the producer sends multi-record batches."""
    async with LogProducer(settings.kafka) as log:
        return list(await asyncio.gather(*(log.append(e) for e in events)))


@pytest.fixture
async def declared(settings: Settings) -> Settings:
    """The declared topics under this test's own prefix. They are left on the session's
    broker: deleting topics fails on the embedded broker's object store (localbucket does not
    implement S3's multi-object delete)."""
    await ensure_topics(settings.kafka, TOPICS)
    return settings


def examples() -> list[Envelope]:
    return [Envelope.new(e, source="test") for e in example_events()]


async def start_tail(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    """``ringlog tail ARGS`` as a process, returned once it says it is following."""
    env = {**os.environ, "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ringlog",
        "tail",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    first = await asyncio.wait_for(proc.stderr.readline(), PROCESS_S)
    assert first.startswith(b"following "), first + await proc.stderr.read()
    return proc


async def finished(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for ``proc`` to exit; (exit code, stdout, rest of stderr)."""
    out, err = await asyncio.wait_for(proc.communicate(), PROCESS_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- dev up and topics ------------------------------------------------------------------------


def test_dev_up_creates_every_declared_topic(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dev up` (every part given by the environment here, so nothing starts) creates the
    declared topics with their declared partitions before anything could auto-create them."""
    w = settings.warehouse
    given = {
        "RINGLOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "RINGLOG_REDIS_URL": settings.redis.url,
        "RINGLOG_SNOWFLAKE_HOST": str(w.host),
        "RINGLOG_SNOWFLAKE_PORT": str(w.port),
        "RINGLOG_SNOWFLAKE_PROTOCOL": w.protocol,
        "RINGLOG_SQS_ENDPOINT_URL": str(settings.sqs.endpoint_url),
        "RINGLOG_CRM_URL": settings.crm.url,
    }
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    try:
        code, out, err = cli(["dev", "up"], settings, **given)
        assert code == 0, out + err
        found = {t.name: t.partitions for t in asyncio.run(list_topics(settings.kafka))}
        assert found == {settings.topic(t.name): t.partitions for t in TOPICS}
        code, out, _ = cli(["dev", "up"], settings, **given)  # again: all there, same shape
        assert code == 0 and "created" not in out and "exists" in out
    finally:
        cli(["dev", "down"], settings, **given)


# -- tail -------------------------------------------------------------------------------------


async def test_tail_follows_new_events_with_numbers_masked(declared: Settings) -> None:
    """Started before the appends, `tail --limit N` prints the N events appended after it,
    one line each, and no phone number whole."""
    events = examples()
    proc = await start_tail(declared, "--limit", str(len(events)))
    await append_all(declared, events)
    code, out, err = await finished(proc)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(events)
    assert sorted(line.split()[2] for line in lines) == sorted(e.type for e in events)
    assert PHONE not in out and PHONE[1:] not in out
    assert "+14*******23" in out
    assert "Lovelace" not in out  # names and what was said only with --text


async def test_tail_from_the_beginning_for_one_call(declared: Settings) -> None:
    """`--from-beginning --call REF` prints exactly that call's events already on the log."""
    events = examples()
    await append_all(declared, events)
    mine = [
        e for e in events if REF in (e.key, e.correlation_id, getattr(e.payload, "call_ref", None))
    ]
    proc = await start_tail(declared, "--from-beginning", "--call", REF, "--limit", str(len(mine)))
    code, out, err = await finished(proc)
    assert code == 0, err
    assert sorted(line.split()[2] for line in out.splitlines()) == sorted(e.type for e in mine)


async def test_tail_stops_at_once_on_sigterm(declared: Settings) -> None:
    proc = await start_tail(declared, "--topic", "calls")
    proc.send_signal(signal.SIGTERM)
    code, out, _ = await finished(proc)
    assert code == 0 and out == ""


# -- lag --------------------------------------------------------------------------------------


def reader(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The reader called ``name`` in a `lag --json` report."""
    (found,) = [r for r in report["readers"] if r["name"] == name]
    return dict(found)


async def lag_report(settings: Settings, *names: str) -> dict[str, Any]:
    """`ringlog lag --json` for the readers called ``names`` (the warehouse left out)."""
    args = ["lag", "--json", "--no-warehouse", *(a for n in names for a in ("--name", n))]
    code, out, err = await asyncio.to_thread(cli, args, settings)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


async def test_lag_of_a_group_and_a_checkpoint_reaches_zero(
    declared: Settings, group_id: str
) -> None:
    """A group that committed nothing read is N behind on `calls`, 0 once it consumed and
    committed; a projection's checkpoint, kept in the CRM database, is read the same way."""
    events = examples()
    positions = await append_all(declared, events)
    on_calls = sum(1 for p in positions if p.topic == declared.topic("calls"))
    consumer = LogConsumer(declared.kafka, [declared.topic("calls")], group_id=group_id)
    await consumer.start()
    try:
        seen: list[LogRecord] = []
        while len(seen) < on_calls:
            seen += (await consumer.getmany(timeout_ms=500)).records
        await consumer.commit(dict.fromkeys(consumer.assignment(), 0))
        before = reader(await lag_report(declared, group_id), group_id)
        assert (before["kind"], before["lag"]) == ("group", on_calls)
        await consumer.commit()
    finally:
        await consumer.stop()
    after = reader(await lag_report(declared, group_id), group_id)
    assert after["lag"] == 0
    assert {p["topic"] for p in after["partitions"]} == {declared.topic("calls")}

    # the CRM projection's checkpoint, written as its runner writes it (rows and positions in
    # one transaction of the CRM database): one record short of the end, then at the end
    crm_topics = [declared.topic(t) for t in ("sessions", "dialog", "tasks")]
    ends = await end_offsets(declared.kafka, crm_topics)
    assert sum(ends.values()) == sum(1 for p in positions if p.topic in crm_topics)
    last = max(p for p, end in ends.items() if end)
    store = CrmStore(declared.crm.url)
    try:
        await store.apply(crm_projection(declared).name, [], {**ends, last: ends[last] - 1})
        crm = reader(await lag_report(declared, "crm"), "crm")
        assert (crm["kind"], crm["store"], crm["lag"]) == ("checkpoint", "crm db", 1)
        await store.apply(crm_projection(declared).name, [], ends)
    finally:
        store.close()
    crm = reader(await lag_report(declared, "crm"), "crm")
    assert crm["lag"] == 0
    assert {(p["topic"], p["partition"]): p["end"] for p in crm["partitions"]} == ends


# -- sql --------------------------------------------------------------------------------------


def test_sql_runs_statements_and_prints_rows(settings: Settings, unique: str) -> None:
    database = {"RINGLOG_SNOWFLAKE_DATABASE": f"CLI_{unique.upper()}"}
    for statement in (
        "CREATE TABLE T (N INT, S VARCHAR)",
        "INSERT INTO T VALUES (1, 'a'), (2, 'b')",
    ):
        code, out, err = cli(["sql", statement], settings, **database)
        assert code == 0, out + err
    code, out, err = cli(["sql", "SELECT N, S FROM T ORDER BY N", "--json"], settings, **database)
    assert code == 0, err
    assert json.loads(out) == [{"N": 1, "S": "a"}, {"N": 2, "S": "b"}]
    code, out, _ = cli(["sql", "SELECT S FROM T ORDER BY N"], settings, **database)
    assert code == 0 and "2 row(s)" in out and "│ b" in out

    code, _, err = cli(["sql", "SELEC nothing"], settings, **database)
    assert code == 1 and err.startswith("error: the warehouse refused the statement")

    code, out, _ = cli(["sql"], settings, **database)
    assert code == 0
    assert f"{settings.warehouse.host}" in out and f"CLI_{unique.upper()}" in out

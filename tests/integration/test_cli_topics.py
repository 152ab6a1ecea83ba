"""`ringlog topics ensure|list` against the real broker, as a script would use them.

Each test has a topic prefix of its own; its topics stay on the session's broker (deleting
topics fails on the embedded broker's object store: localbucket does not implement S3's
multi-object delete)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ringlog.cli import app
from ringlog.config import Settings
from ringlog.schemas import Envelope
from ringlog.streams.admin import ensure_topics
from ringlog.streams.producer import LogProducer, RecordPosition
from ringlog.streams.topics import TOPICS
from tests.support.examples import example_events

pytestmark = pytest.mark.integration


@pytest.fixture(name="cli_env")
def _cli_env(settings: Settings, stack_home: Path) -> dict[str, str]:
    return {"RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix}


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI in-process and return (exit code, stdout)."""
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout


def test_ensure_creates_then_finds_every_declared_topic(
    settings: Settings, cli_env: dict[str, str]
) -> None:
    """First `ensure` creates all topics, the second finds them all existing."""
    code, out = invoke(["topics", "ensure", "--json"], cli_env)
    assert code == 0, out
    first = json.loads(out)
    assert {r["name"] for r in first} == {t.name for t in TOPICS}
    assert {r["status"] for r in first} == {"created"}

    code, out = invoke(["topics", "ensure", "--json"], cli_env)
    second = json.loads(out)
    assert code == 0
    assert {r["status"] for r in second} == {"exists"}
    assert all(r["partitions_actual"] == r["partitions_declared"] for r in second)


def test_ensure_names_a_topic_of_the_wrong_shape_and_what_to_do(
    settings: Settings, cli_env: dict[str, str]
) -> None:
    """A topic made before `ensure` with other partitions (as auto-creation would) is left
    alone, and the exit code and one line per topic say so and what to run."""
    calls = TOPICS[0]
    assert calls.name == "calls"
    wrong = replace(calls, partitions=calls.partitions - 2)
    asyncio.run(ensure_topics(settings.kafka, [wrong]))
    result = CliRunner().invoke(app, ["topics", "ensure"], env=cli_env)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {settings.topic('calls')} has {wrong.partitions} partitions")
    assert "`ringlog topics ensure`" in line and "RINGLOG_KAFKA_TOPIC_PREFIX" in line


async def append_examples(settings: Settings, copies: int = 3) -> list[RecordPosition]:
    """Append ``copies`` envelopes of every example event, all at once, so the producer sends
    them in multi-record batches; return the positions."""
    events = [Envelope.new(e, source="test") for e in example_events()] * copies
    async with LogProducer(settings.kafka) as log:
        return list(await asyncio.gather(*(log.append(e) for e in events)))


def test_list_counts_every_record_exactly(settings: Settings, cli_env: dict[str, str]) -> None:
    """`topics list --json` gives each topic's partition count and exactly the number of
    records appended to it, multi-record batches included (ListOffsets alone undercounts on
    the embedded broker)."""
    asyncio.run(ensure_topics(settings.kafka, TOPICS))
    positions = asyncio.run(append_examples(settings))
    code, out = invoke(["topics", "list", "--json"], cli_env)
    expected: dict[str, int] = {}
    for p in positions:
        expected[p.topic] = expected.get(p.topic, 0) + 1
    assert code == 0, out
    listed = {row["name"]: row for row in json.loads(out)}
    assert set(listed) == {settings.topic(t.name) for t in TOPICS}
    for spec in TOPICS:
        row = listed[settings.topic(spec.name)]
        assert row["partitions"] == spec.partitions
        assert row["records"] == expected.get(settings.topic(spec.name), 0)
    assert sum(row["records"] for row in listed.values()) == len(positions)


def test_unreachable_broker_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    """With no broker at the address, the command exits 2 and names the address."""
    env = {
        "RINGLOG_HOME": str(tmp_path),
        "RINGLOG_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "RINGLOG_KAFKA_REQUEST_TIMEOUT_MS": "1000",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ringlog", "topics", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "127.0.0.1:1" in proc.stderr
    assert "Traceback" not in proc.stderr

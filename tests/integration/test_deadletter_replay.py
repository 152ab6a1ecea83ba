"""Dead letters re-driven once, against the embedded broker and PostgreSQL.

A row PostgreSQL refuses is parked by the CRM projection (as in test_poison_rows); ``ringlog
deadletter list`` shows it, numbers masked; after the fix (the column widened) ``ringlog
deadletter replay`` puts a copy back on its source partition for the CRM alone: the row lands
once, the sessions view reading the same topic does not see it again, and a second replay
re-drives nothing. A replay that stopped midway (marked, copied but not marked done; or marked
only) is finished by the next one without a second copy; ``--key`` picks the records of a key.
A rebuild from the log's start folds the original and skips its copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from ringlog.config import Settings
from ringlog.projections.crm.schema import INTERACTIONS
from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import SessionProgressed, SessionStarted, encode, headers
from ringlog.sessions.state import SessionState
from ringlog.streams.consumer import LogRecord
from ringlog.streams.deadletter import HEADER_REDRIVE_FOR, HEADER_REDRIVE_OF, dead_letter
from ringlog.streams.producer import LogProducer, RecordPosition
from ringlog.streams.redrive import Where, marker
from ringlog.views import ViewStore, view_runners
from ringlog.views.store import SESSIONS_VIEW
from tests.integration.test_cli_tools import cli
from tests.integration.test_poison_rows import (
    FIRST,
    PHONE,
    SECOND,
    after_poison,
    append,
    before_poison,
    make_runner,
    poison,
)
from tests.support.crm import crm_store, env, rows
from tests.support.logread import records
from tests.support.postgres import fresh_schemas

pytestmark = pytest.mark.integration

MASKED = "+14*******23"


@pytest.fixture
def store(unique: str) -> Iterator[CrmStore]:
    """A CRM store on a fresh schema of the test PostgreSQL."""
    with fresh_schemas(f"redrive_{unique}") as (url,), crm_store(url) as crm:
        yield crm


async def run(settings: Settings, *args: str) -> tuple[str, str]:
    """``ringlog ARGS`` in-process for the test's topics; (stdout, stderr) of a clean exit."""
    code, out, err = await asyncio.to_thread(cli, list(args), settings)
    assert code == 0, out + err
    return out, err


async def session_view(settings: Settings, store: ViewStore, group: str) -> SessionState | None:
    """Fold ``sessions`` into the sessions view (a group of its own) to the log's end, then
    read the number's session."""
    (runner,) = view_runners(settings, store, [SESSIONS_VIEW], group_suffix=group)
    await runner.run_until_caught_up(timeout_s=60)
    return await store.session(PHONE, settings.topic("sessions"))


def copies(found: Sequence[LogRecord]) -> list[tuple[str, str]]:
    """The re-driven copies among ``found``: (processor, dead letter) of each."""
    return [
        (h[HEADER_REDRIVE_FOR].decode(), h[HEADER_REDRIVE_OF].decode())
        for h in (dict(r.headers) for r in found)
        if HEADER_REDRIVE_FOR in h
    ]


async def test_a_parked_row_is_listed_and_replayed_once_for_its_projection_only(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    refused = poison("call ref longer than its column")
    envelopes = [*before_poison(), refused, *after_poison()]
    positions = await append(topics, envelopes)
    bad = positions[envelopes.index(refused)]
    await make_runner(topics, store, group_id).run_until_caught_up(timeout_s=60)
    views = ViewStore.open(topics.crm.url)
    try:
        session_before = await session_view(topics, views, f"-{group_id}")
        assert session_before is not None and session_before.active_call is None  # dropped

        out, _ = await run(topics, "deadletter", "list")
        (line,) = out.splitlines()
        assert f"#0  crm  sessions/{bad.partition}:{bad.offset}  session.started  {MASKED}" in line
        assert "StringDataRightTruncation" in line and "character varying(128)" in line
        assert PHONE not in out and PHONE[1:] not in out

        # the fix: the column takes longer refs now
        with store.engine.begin() as connection:
            connection.execute(
                text(f"ALTER TABLE {INTERACTIONS.name} ALTER COLUMN call_ref TYPE varchar(256)")
            )
        out, _ = await run(topics, "deadletter", "replay", "--dry-run")
        assert out.startswith("would re-drive #0 session.started")
        call_ref = refused.payload.call_ref  # type: ignore[attr-defined]
        assert call_ref not in {r["call_ref"] for r in rows(store, INTERACTIONS)}
        out, err = await run(topics, "deadletter", "replay")
        assert out.startswith(f"re-drove #0 session.started (key {MASKED}, for crm) as sessions/")
        assert "1 record(s) re-driven" in err
        await make_runner(topics, store, group_id).run_until_caught_up(timeout_s=60)

        by_ref = {r["call_ref"]: r for r in rows(store, INTERACTIONS)}
        assert set(by_ref) == {FIRST, SECOND, call_ref}
        assert (by_ref[call_ref]["outcome"], by_ref[call_ref]["stage_reached"]) == (
            "in_progress",
            "identity",
        )
        # the later events stand: the copy came after them, on its own row
        assert (by_ref[FIRST]["stage_reached"], by_ref[SECOND]["outcome"]) == ("date", "dropped")
        # the sessions view read the copy too, and left it to the CRM: a second
        # session.started would have made the session active again on the poison's call
        assert await session_view(topics, views, f"-{group_id}-again") == session_before

        out, err = await run(topics, "deadletter", "replay")
        assert out == "" and "nothing to re-drive" in err
        out, err = await run(topics, "deadletter", "list")
        assert out == "" and "0 of 1 on deadletter still parked" in err
        out, _ = await run(topics, "deadletter", "list", "--all")
        assert "redriven→sessions/" in out
        await make_runner(topics, store, group_id).run_until_caught_up(timeout_s=60)
        assert len(rows(store, INTERACTIONS)) == 3
        on_sessions = await records(topics.kafka, topics.topic("sessions"))
        assert copies(on_sessions) == [("projection:crm", f"{topics.topic('deadletter')}/0/0")]
        parked = await records(topics.kafka, topics.topic("deadletter"))
        assert len(parked) == 3  # the dead letter and its two markers: nothing failed again
    finally:
        views.close()


# -- a replay stopped midway, and --key --------------------------------------------------------


async def park(settings: Settings, phones: Sequence[str]) -> list[RecordPosition]:
    """One session.started per number on ``sessions``, each parked for the CRM as the runtime
    parks a record; the dead letters' positions."""
    started = [
        env(SessionStarted(session_id=f"s-{p[-2:]}", phone=p, call_ref=f"c-{p[-2:]}", stage="x"))
        for p in phones
    ]
    async with LogProducer(settings.kafka) as log:
        parked = []
        for envelope in started:
            at = await log.append(envelope)
            parked.append(
                await dead_letter(
                    log,
                    settings.topic("deadletter"),
                    processor="projection:crm",
                    error="DataError: refused",
                    topic=at.topic,
                    partition=at.partition,
                    offset=at.offset,
                    key=envelope.key.encode(),
                    value=encode(envelope),
                    headers=headers(envelope),
                )
            )
        return parked


async def stopped_run(settings: Settings, letter: RecordPosition, *, copied: bool) -> None:
    """What a replay leaves when it stops after marking ``letter`` *redriving* (and, when
    ``copied``, after appending its copy), before marking it *redriven*."""
    from ringlog.streams.redrive import read_ledger

    (found,) = [
        e
        for e in await read_ledger(settings.kafka, settings.topic("deadletter"))
        if e.at.offset == letter.offset
    ]
    assert found.origin is not None
    async with LogProducer(settings.kafka) as log:
        value, marks = marker(
            found, "redriving", Where(found.origin.topic, found.origin.partition, 0)
        )
        await log.append_raw(letter.topic, value, key=found.key, headers=marks)
        if copied:
            await log.append_raw(
                found.origin.topic,
                found.value,
                key=found.key,
                headers=found.copy_headers(),
                partition=found.origin.partition,
            )


async def test_a_replay_stopped_midway_is_finished_once_and_key_picks_records(
    topics: Settings,
) -> None:
    phones = ["+14155550101", "+14155550102", "+14155550103"]
    one, two, three = await park(topics, phones)
    await stopped_run(topics, one, copied=True)
    await stopped_run(topics, two, copied=False)

    out, _ = await run(topics, "deadletter", "list", "--key", phones[2])
    (line,) = out.splitlines()
    assert line.split()[1:3] == [f"#{three.offset}", "crm"] and "+14*******03" in line
    out, _ = await run(topics, "deadletter", "replay", "--key", phones[2], "--dry-run")
    assert out.count("would re-drive") == 1 and f"#{three.offset}" in out
    out, _ = await run(topics, "deadletter", "replay", "--key", phones[2])
    assert out.count("re-drove") == 1 and f"#{three.offset}" in out
    out, _ = await run(topics, "deadletter", "list", "--all")
    states = [line.split()[6] for line in out.splitlines()]
    assert states[:2] == ["redriving", "redriving"] and states[2].startswith("redriven→")

    out, _ = await run(topics, "deadletter", "replay")
    assert out.splitlines()[0].startswith(f"already re-driven #{one.offset} session.started")
    assert out.splitlines()[1].startswith(f"re-drove #{two.offset} session.started")
    out, err = await run(topics, "deadletter", "replay")
    assert out == "" and "nothing to re-drive" in err

    deadletter = topics.topic("deadletter")
    on_sessions = await records(topics.kafka, topics.topic("sessions"))
    assert sorted(copies(on_sessions)) == [
        ("projection:crm", f"{deadletter}/0/{p.offset}") for p in (one, two, three)
    ]
    out, err = await run(topics, "deadletter", "list")
    assert out == "" and "0 of 3" in err


async def test_a_rebuild_applies_the_original_and_skips_its_copy(
    topics: Settings, tmp_path: Path
) -> None:
    """A session.started the sessions view parked, re-driven after the session progressed:
    the live view applies the copy (where it lands); a rebuild from the log's start folds the
    original in its place and skips the copy, which would start the session over."""
    s = {"session_id": "s-rebuild", "phone": PHONE, "call_ref": "in_rebuild"}
    started = env(SessionStarted(**s, stage="identity"))
    async with LogProducer(topics.kafka) as log:
        at = await log.append(started)
        await log.append(env(SessionProgressed(**s, stage="date"), 1))
        await dead_letter(
            log,
            topics.topic("deadletter"),
            processor="projection:sessions",
            error="OperationalError: refused",
            topic=at.topic,
            partition=at.partition,
            offset=at.offset,
            key=started.key.encode(),
            value=encode(started),
            headers=headers(started),
        )
    out, _ = await run(topics, "deadletter", "replay", "--projection", "sessions")
    assert out.startswith("re-drove #0 session.started (key +14*******23, for sessions)")
    code, out, err = await asyncio.to_thread(
        cli, ["rebuild", "sessions"], topics, RINGLOG_CRM_URL=f"sqlite:///{tmp_path / 'v.db'}"
    )
    assert code == 0, out + err
    assert "3 record(s) folded" in out  # the original, the progress and the copy, skipped
    rebuilt = ViewStore.open(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        session = await rebuilt.session(PHONE, topics.topic("sessions"))
    finally:
        rebuilt.close()
    assert session is not None and (session.stage, session.version) == ("date", 2)

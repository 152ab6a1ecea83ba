"""Time travel against the embedded broker: a number's session and a call's state at past
instants, folded with the live folds, from the CLI and the read API.

Events are appended through the real log client, occurred a day before they are recorded,
with instants taken between them; the runtime keeps the views (timeline, sessions) and the
worker's call states. The state between two events is the first one's, after both the
second's, and at now the state the live views hold. Instants before the log's start, in the
future or not datetimes are refused (exit 2, 422), unknown keys said to be unknown.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ringlog.config import Settings
from ringlog.logs import mask_phone
from ringlog.schemas import (
    CallDispatched,
    CallRequested,
    DialogTurn,
    Envelope,
    SessionDropped,
    SessionProgressed,
    SessionStarted,
)
from ringlog.schemas.base import EventModel
from ringlog.streams.producer import LogProducer
from tests.integration.test_api_ingest import AUTH
from tests.integration.test_cli_tools import cli
from tests.support.examples import CLINIC, PHONE, RETELL_ID
from tests.support.logread import eventually
from tests.support.worker_runtime import folding_worker, keeping_views

pytestmark = pytest.mark.integration

MASKED = "+14*******23"
#: The gap between an append and the instants taken around it (timestamps are milliseconds).
GAP_S = 0.05


def now() -> datetime:
    return datetime.now(UTC)


async def story(settings: Settings, *payloads: EventModel) -> list[datetime]:
    """Append each payload (it occurred a day before it is recorded) and return the instants
    taken before the first and after each: ``[before, after_1, …, after_n]``."""
    instants = [now()]
    async with LogProducer(settings.kafka) as log:
        for payload in payloads:
            await asyncio.sleep(GAP_S)
            envelope = Envelope.new(payload, source="test", occurred_at=now() - timedelta(days=1))
            await log.append(envelope)
            await asyncio.sleep(GAP_S)
            instants.append(now())
    return instants


async def run(settings: Settings, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(cli, list(args), settings)


async def shown(settings: Settings, *args: str) -> dict[str, Any]:
    """The JSON a ``show`` command printed (it must exit 0)."""
    code, out, err = await run(settings, *args)
    assert code == 0, out + err
    data: dict[str, Any] = json.loads(out)
    return data


async def test_a_session_at_a_past_instant_has_the_stage_it_had_then(topics: Settings) -> None:
    s = {"session_id": "s-travel", "phone": PHONE, "call_ref": "in_travel"}
    before, started, progressed, dropped = await story(
        topics,
        SessionStarted(**s, stage="identity"),
        SessionProgressed(**s, stage="date", slots={"date": "2026-12-09"}),
        SessionDropped(**s, stage="date", reason="caller_hangup", expires_at=now() + timedelta(1)),
    )
    then = await shown(topics, "session", "show", PHONE, "--at", started.isoformat())
    assert (then["status"], then["stage"], then["slots"], then["version"]) == (
        "active",
        "identity",
        {},
        1,
    )
    assert then["phone"] == MASKED
    later = await shown(topics, "session", "show", PHONE, "--at", progressed.isoformat())
    assert (later["status"], later["stage"], later["slots"]) == (
        "active",
        "date",
        {"date": "2026-12-09"},
    )
    # an instant without an offset is UTC
    naive = progressed.replace(tzinfo=None).isoformat()
    assert await shown(topics, "session", "show", PHONE, "--at", naive) == later
    last = await shown(topics, "session", "show", PHONE, "--at", dropped.isoformat())
    assert (last["status"], last["open"], last["active_call"]) == ("dropped", True, None)
    async with keeping_views(topics):
        current = await shown(topics, "session", "show", PHONE)
    assert current == last  # the view's fold and time travel's agree

    code, _, err = await run(topics, "session", "show", PHONE, "--at", before.isoformat())
    assert code == 2 and "is before the log's start" in err and len(err.splitlines()) == 1
    future = (now() + timedelta(hours=1)).isoformat()
    code, _, err = await run(topics, "session", "show", PHONE, "--at", future)
    assert code == 2 and "is in the future" in err
    code, _, err = await run(topics, "session", "show", PHONE, "--at", "last tuesday")
    assert code == 2 and "is not an ISO-8601 datetime" in err
    code, _, err = await run(topics, "session", "show", "+14155550100", "--at", started.isoformat())
    assert code == 1 and "no session for +14*******00 at" in err
    code, _, err = await run(topics, "session", "show", "0123", "--at", started.isoformat())
    assert code == 2 and "is not an E.164 number" in err


async def test_a_call_at_a_past_instant_from_the_cli_and_the_api(
    topics: Settings, client: httpx.AsyncClient
) -> None:
    ref = "call-travel"
    before, asked, placed, said = await story(
        topics,
        CallRequested(call_ref=ref, to_number=PHONE, from_number=CLINIC, agent_id="agent"),
        CallDispatched(call_ref=ref, retell_call_id=RETELL_ID, agent_id="agent"),
        DialogTurn(call_ref=ref, call_id=RETELL_ID, turn_index=0, role="agent", text="Hello!"),
    )
    async with folding_worker(topics), keeping_views(topics):
        events = await eventually(
            lambda: client.get(f"/v1/calls/{ref}/events", headers=AUTH),
            lambda r: r.status_code == 200 and len(r.json()) == 3,
        )
        assert [e["type"] for e in events.json()] == [
            "call.requested",
            "call.dispatched",
            "dialog.turn",
        ]
        current = await eventually(
            lambda: client.get(f"/v1/calls/{ref}", headers=AUTH),
            lambda r: r.status_code == 200 and r.json()["dispatch"] == "dispatched",
        )

        # the CLI
        then = await shown(topics, "call", "show", ref, "--at", asked.isoformat())
        assert (then["dispatch"], then["events"], then["retell_call_id"]) == ("pending", 1, None)
        assert then["to_number"] == MASKED
        later = await shown(topics, "call", "show", ref, "--at", placed.isoformat())
        assert (later["dispatch"], later["events"]) == ("dispatched", 2)
        now_shown = await shown(topics, "call", "show", ref)
        assert now_shown == later == json.loads(mask_phone(json.dumps(current.json())))
        code, out, err = await run(topics, "call", "timeline", ref)
        assert code == 0, err
        lines = out.splitlines()
        assert [line.split()[2:4] for line in lines] == [
            ["call.requested", "test"],
            ["call.dispatched", "test"],
            ["dialog.turn", "test"],
        ]
        assert lines[0].split()[1].startswith("calls/") and lines[2].split()[1].startswith(
            "dialog/"
        )
        assert PHONE not in out and MASKED in out and "Hello!" not in out
        code, out, _ = await run(topics, "call", "timeline", ref, "--text")
        assert code == 0 and "Hello!" in out

        # the API: the same shape, at an instant
        at_asked = await client.get(
            f"/v1/calls/{ref}", params={"at": asked.isoformat()}, headers=AUTH
        )
        assert at_asked.status_code == 200, at_asked.text
        assert at_asked.json().keys() == current.json().keys()
        assert (at_asked.json()["dispatch"], at_asked.json()["events"]) == ("pending", 1)
        assert topics.topic("calls") in at_asked.headers["X-Ringlog-Position"]
        at_said = await client.get(
            f"/v1/calls/{ref}", params={"at": said.isoformat()}, headers=AUTH
        )
        assert at_said.json() == current.json()

        # refusals
        for at, why in (
            (before.isoformat(), "is before the log's start"),
            ((now() + timedelta(minutes=5)).isoformat(), "is in the future"),
            ("not-a-date", "is not an ISO-8601 datetime"),
        ):
            answer = await client.get(f"/v1/calls/{ref}", params={"at": at}, headers=AUTH)
            assert answer.status_code == 422 and why in answer.json()["detail"], answer.text
            code, _, err = await run(topics, "call", "show", ref, "--at", at)
            assert code == 2 and why in err
        unknown = await client.get(
            "/v1/calls/never", params={"at": asked.isoformat()}, headers=AUTH
        )
        assert unknown.status_code == 404 and "no call never at" in unknown.json()["detail"]
        code, _, err = await run(topics, "call", "show", "never", "--at", asked.isoformat())
        assert code == 1 and "no call never at" in err
        code, _, err = await run(topics, "call", "timeline", "never")
        assert code == 1 and "no call never" in err

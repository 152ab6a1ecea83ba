"""The two seed stories, driven over HTTP against running ringlog processes and the simulator.

Each story acts as its outside world would (a patient calling through the simulator, an
upstream trigger calling the API) and then looks for every effect where it should land: the
log, the session read API, the Redis cache, the CRM tables, the call records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import create_engine, select

from ringlog.config import Settings
from ringlog.demo.checks import Story, wait_for
from ringlog.projections.call_records import CallRecordStore
from ringlog.projections.crm.schema import APPOINTMENTS, INTERACTIONS, PATIENTS
from ringlog.projections.warehouse import warehouse_store
from ringlog.schemas.abt import AbtEvent

CLINIC = "+14155550100"
ABT_ORDER = ["voice_call_initiated", "call_started", "call_completed"]


@dataclass
class World:
    """Where the stories reach ringlog and the simulator."""

    settings: Settings
    api: httpx.AsyncClient
    sim: httpx.AsyncClient
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def sim_call(self, call_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.sim.get(f"/sim/calls/{call_id}")).json()
        return answer

    async def finished(self, story: Story, call_id: str) -> dict[str, Any]:
        ok, call = await wait_for(lambda: self.sim_call(call_id), _done)
        story.expect("the simulated call finished", "simulator", ok, call.get("status", "?"))
        for turn in call.get("transcript") or []:
            who = "agent  " if turn["role"] == "agent" else "patient"
            story.say(f"  {who}: {turn['content']}")
        return call

    async def session(self, phone: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/sessions/{phone}", headers=self.auth)
        return response.json() if response.status_code == 200 else {}


def _done(call: dict[str, Any]) -> bool:
    return call.get("status") in ("done", "failed")


def random_number() -> str:
    """A number in the 555-01xx fiction range with a random tail, unique per run."""
    return f"+1415555{secrets.randbelow(10_000):04d}"


async def recovery(world: World) -> Story:
    """Seed 000: book a flu shot, drop at the date, call back, resume, complete."""
    story = Story("a dropped booking call recovered")
    phone = random_number()
    story.say(f"Jane Doe calls from {phone}; she hangs up when asked which day.")
    first = await world.sim.post(
        "/sim/inbound",
        json={
            "from_number": phone,
            "to_number": CLINIC,
            "faults": {"drop_after_phrase": "which day"},
        },
    )
    first.raise_for_status()
    call1 = await world.finished(story, first.json()["call_id"])
    story.expect(
        "first call dropped by the caller",
        "simulator",
        call1.get("disconnection_reason") == "user_hangup",
        str(call1.get("disconnection_reason")),
    )
    ok, session = await wait_for(
        lambda: world.session(phone), lambda s: s.get("status") == "dropped", timeout_s=20
    )
    story.expect(
        "session open, marked dropped at the date",
        "sessions topic → GET /v1/sessions",
        ok and session.get("stage") == "date",
        f"status={session.get('status')} stage={session.get('stage')}",
    )

    story.say("She calls back from the same number.")
    second = await world.sim.post(
        "/sim/inbound", json={"from_number": phone, "to_number": CLINIC, "faults": {}}
    )
    second.raise_for_status()
    call2 = await world.finished(story, second.json()["call_id"])
    words = str(call2.get("first_agent_words") or "")
    story.expect(
        "welcome back at the stage reached",
        "custom-LLM socket",
        words.startswith("Welcome back! You were booking a flu shot. We were at selecting a date"),
        words,
    )
    variables = (
        (call2.get("inbound_answer") or {}).get("call_inbound", {}).get("dynamic_variables", {})
    )
    story.expect(
        "inbound webhook answered with the resume context",
        "POST /v1/webhooks/retell/inbound",
        variables.get("resume") == "true",
        str(variables),
    )
    ok, session = await wait_for(
        lambda: world.session(phone), lambda s: s.get("status") == "completed", timeout_s=20
    )
    refs = session.get("call_refs") or []
    story.expect(
        "session completed across both calls",
        "sessions topic",
        ok and len(refs) == 2,
        f"status={session.get('status')} calls={refs}",
    )
    redis = aioredis.Redis.from_url(world.settings.redis.url)
    try:
        cached = await redis.exists(f"{world.settings.redis.key_prefix}session:{phone}")
    finally:
        await redis.aclose()
    story.expect("session removed from the cache", "Redis", cached == 0)
    await _crm(world, story, phone, session.get("session_id"), refs)
    return story


async def _crm(world: World, story: Story, phone: str, session_id: object, refs: list[str]) -> None:
    engine = create_engine(world.settings.crm.url)

    async def rows() -> tuple[list[Any], list[Any], list[Any]]:
        with engine.connect() as connection:
            patients = list(connection.execute(select(PATIENTS).where(PATIENTS.c.phone == phone)))
            appointments = list(
                connection.execute(
                    select(APPOINTMENTS).where(APPOINTMENTS.c.session_id == str(session_id))
                )
            )
            interactions = list(
                connection.execute(
                    select(INTERACTIONS)
                    .where(INTERACTIONS.c.call_ref.in_(refs))
                    .order_by(INTERACTIONS.c.call_ref)
                )
            )
        return patients, appointments, interactions

    try:
        ok, (patients, appointments, interactions) = await wait_for(
            rows,
            lambda r: (
                bool(r[0] and r[1])
                and len(r[2]) == 2
                and sorted(i.outcome for i in r[2]) == ["completed", "dropped"]
            ),
            timeout_s=30,
        )
    finally:
        engine.dispose()
    story.expect(
        "CRM: patient, appointment, and both calls' history",
        "CRM (crm_patients, crm_appointments, crm_interactions)",
        ok,
        f"{len(patients)} patient, {len(appointments)} appointment, "
        f"{len(interactions)} interactions",
    )
    for a in appointments:
        story.say(f"  CRM appointment: {a.kind} on {a.date} at {a.time}, {a.site}")
    for i in interactions:
        story.say(f"  CRM interaction {i.call_ref}: {i.outcome}, {i.turns} turns")


async def outbound(world: World) -> Story:
    """Seed 003: an upstream trigger asks for a call; three ABT events follow, in order."""
    story = Story("an outbound call")
    phone = random_number()
    response = await world.api.post(
        "/v1/calls",
        json={"to_number": phone, "from_number": CLINIC, "task_ref": f"task-{phone[-4:]}"},
        headers=world.auth,
    )
    story.expect(
        "call request accepted after it is durable",
        "POST /v1/calls",
        response.status_code == 202,
        response.text,
    )
    if response.status_code != 202:
        return story
    ref = response.json()["call_ref"]
    story.say(f"Engage asks for a call to {phone}: call ref {ref}.")

    async def abt() -> list[str]:
        """The call's ABT events, from its timeline (``GET /v1/calls/{ref}/events``)."""
        timeline = await world.api.get(f"/v1/calls/{ref}/events", headers=world.auth)
        if timeline.status_code != 200:
            return []
        return [e["payload"]["name"] for e in timeline.json() if e["type"] == AbtEvent.event_type]

    ok, names = await wait_for(abt, lambda n: len(n) >= 3, timeout_s=60)
    story.expect(
        "ABT initiated → started → completed",
        "abt topic → GET /v1/calls/{ref}/events",
        ok and names == ABT_ORDER,
        str(names),
    )
    for name in names:
        story.say(f"  ABT: {name}")
    store = CallRecordStore(world.settings.crm.url)
    try:
        record = await store.read(ref)
    finally:
        store.close()
    story.expect(
        "call record stored before call_completed",
        "CRM (call_records)",
        record is not None,
        "" if record is None else f"status={record.status}, {record.duration_ms} ms",
    )
    await business_tasks(world, story, task=f"task-{phone[-4:]}", call_ref=ref)
    return story


async def business_tasks(world: World, story: Story, *, task: str, call_ref: str) -> None:
    """Staff write fields back, reschedule, delete and record an incoming call; each lands
    in the warehouse."""
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    moved, dropped = f"{task}-r", f"{task}-d"
    for other in (moved, dropped):  # two more calls of their own tasks, due in an hour
        await world.api.post(
            "/v1/calls",
            json={
                "to_number": random_number(),
                "from_number": CLINIC,
                "task_ref": other,
                "scheduled_at": later,
            },
            headers=world.auth,
        )
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    incoming_task = f"{task}-in"
    steps = [
        (
            "field writeback",
            "POST",
            f"/v1/tasks/{task}/field-writeback",
            {"fields": {"status": "completed", "outcome": "reached"}},
        ),
        ("reschedule to in 2 s", "POST", f"/v1/tasks/{moved}/reschedule", {"scheduled_at": soon}),
        ("delete task", "DELETE", f"/v1/tasks/{dropped}", {"reason": "patient declined"}),
        (
            "incoming call",
            "POST",
            "/v1/tasks/incoming-call",
            {"task_id": incoming_task, "from_number": random_number(), "to_number": CLINIC},
        ),
    ]
    for name, method, path, body in steps:
        response = await world.api.request(method, path, json=body, headers=world.auth)
        story.say(f"  staff: {name} → {response.status_code}")
        story.expect(f"task API: {name}", path, response.status_code == 202, response.text[:80])

    store = warehouse_store(world.settings)

    async def warehouse() -> dict[str, Any]:
        def read() -> dict[str, Any]:
            tasks = store.query(
                'SELECT "TASK_ID", "DELETED", "SCHEDULED_AT" IS NOT NULL, '
                '"INCOMING_FROM_HASH" IS NOT NULL, "LAST_EVENT_TYPE" FROM "TASKS" '
                'WHERE "TASK_ID" IN (?, ?, ?, ?)',
                (task, moved, dropped, incoming_task),
            )
            calls = store.query('SELECT "STATUS" FROM "CALLS" WHERE "CALL_REF" = ?', (call_ref,))
            abt = store.query('SELECT COUNT(*) FROM "ABT_EVENTS" WHERE "CALL_REF" = ?', (call_ref,))
            by_task = store.query(
                'SELECT "TASK_REF", "STATUS" FROM "CALLS" WHERE "TASK_REF" IN (?, ?)',
                (moved, dropped),
            )
            return {
                "tasks": {r[0]: r[1:] for r in tasks},
                "calls": calls,
                "abt": abt[0][0],
                "task_calls": dict(by_task),
            }

        try:
            return await asyncio.to_thread(read)
        except Exception as exc:  # noqa: BLE001 - tables not there yet: keep waiting
            return {"error": str(exc)}

    def landed(w: dict[str, Any]) -> bool:
        t = w.get("tasks", {})
        return (
            len(t) == 4
            and t[task][3] == "task.field_writeback"
            and t[moved][1] is True
            and t[dropped][0] is True
            and t[incoming_task][2] is True
            and w["abt"] == 3
            and bool(w["calls"])
            and w["task_calls"].get(moved) not in (None, "pending")
            and w["task_calls"].get(dropped) == "cancelled"
        )

    try:
        ok, seen = await wait_for(warehouse, landed, timeout_s=60)
    finally:
        store.close()
    story.expect(
        "writeback, reschedule (call placed), delete (tombstone, call cancelled), incoming"
        " call, the call and its ABT",
        "Snowflake (TASKS, CALLS, ABT_EVENTS)",
        ok,
        str(seen)[:200],
    )

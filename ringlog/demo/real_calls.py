"""Real calls: what they do on Retell's custom-LLM socket, played by the simulator.

Three calls play at once against the running platform, each booked to the end:

- an inbound call whose patient keeps talking while giving their name (Retell asks for a
  reply with the name cut short, then again with the whole name; the first reply is never
  spoken) and whose date of birth is asked for twice back to back;
- an inbound call whose socket is lost when the agent asks for the time, and opened again;
- a web call (``create-web-call``: no numbers) that lasts two hours: its ``call_ended`` carries
  a 2-hour transcript with word timings and tool calls (about 1.4 MiB).

Then the story looks where a user would: the simulator's record of each call
(``GET /sim/calls/{id}``), the session read API, the call's state and timeline
(``GET /v1/calls/{ref}`` and ``…/events``) and the CRM's appointments.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import create_engine, func, select

from ringlog.demo.checks import Story, wait_for
from ringlog.demo.stories import CLINIC, World, random_number
from ringlog.projections.crm.schema import APPOINTMENTS
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.retell import RetellCallEnded
from ringlog.simulator.faults import Faults
from ringlog.simulator.transcripts import MAX_CALL_DURATION_MS

#: The patient of the interrupted call; the name is cut short to its first word.
NAME = "Sam Rivera"
#: What the agent's first words contain, once per call (a fresh greeting or a welcome back).
GREETINGS = ("hello", "welcome")
WEBHOOKS = ["call_started", "call_ended", "call_analyzed"]


async def real_calls(world: World) -> Story:
    """An interrupted caller asked twice, a socket lost mid-call, a 2-hour web call."""
    story = Story("real calls: interruptions, a lost socket, a 2-hour web call")
    interrupted, reconnected = random_number(), random_number()
    while reconnected == interrupted:
        reconnected = random_number()
    first = await _call_in(
        world,
        interrupted,
        Faults(keep_talking_at="full name", twice_at="date of birth"),
        persona={"name": NAME},
    )
    second = await _call_in(world, reconnected, Faults(reconnect_at="what time"))
    web = await _web_call(world)

    story.say(
        f"{NAME} calls from {interrupted}; she keeps talking while giving her name, and her "
        "date of birth is asked for twice, back to back."
    )
    label = "interrupted call"
    entry = await _finished(world, story, first, label)
    _requests(story, entry, label)
    await _booked_session(world, story, interrupted, entry, label, name=NAME)
    await _turns(world, story, entry, label)

    story.say(f"A patient calls from {reconnected}; the socket is lost when asked for the time.")
    label = "reconnected call"
    entry = await _finished(world, story, second, label, lost_at="what time")
    story.expect(
        f"{label}: the socket was lost once and opened again for the same call",
        "simulator (reconnects)",
        entry.get("reconnects") == 1,
        f"reconnects={entry.get('reconnects')}",
    )
    await _booked_session(world, story, reconnected, entry, label)
    await _turns(world, story, entry, label)

    story.say("A patient books on the clinic's web page: a web call, no numbers, two hours long.")
    label = "2-hour web call"
    summary = "Retell reports it as 2 hours long, with a transcript of about 12,000 words"
    entry = await _finished(world, story, web, label, summary=summary)
    await _two_hours(world, story, entry, label)
    await _turns(world, story, entry, label)
    return story


async def _call_in(
    world: World, phone: str, faults: Faults, persona: dict[str, str] | None = None
) -> str:
    """The simulated patient calls the clinic from ``phone`` under ``faults``; the call id."""
    body = {"from_number": phone, "to_number": CLINIC, "faults": faults.model_dump()}
    response = await world.sim.post("/sim/inbound", json=body | {"persona": persona or {}})
    response.raise_for_status()
    return str(response.json()["call_id"])


async def _web_call(world: World) -> str:
    """A 2-hour web call through Retell's ``create-web-call``; the faults are reset after."""
    key = world.settings.retell.api_key
    auth = {"Authorization": f"Bearer {key.get_secret_value() if key else ''}"}
    await world.sim.put("/sim/faults", json=Faults(two_hours=True).model_dump())
    try:
        response = await world.sim.post(
            "/v2/create-web-call", json={"agent_id": world.settings.retell.agent_id}, headers=auth
        )
    finally:
        await world.sim.put("/sim/faults", json=Faults().model_dump())
    response.raise_for_status()
    return str(response.json()["call_id"])


async def _finished(
    world: World,
    story: Story,
    call_id: str,
    label: str,
    *,
    summary: str | None = None,
    lost_at: str | None = None,
) -> dict[str, Any]:
    """Wait for the simulated call to end; print its transcript (marking where the socket was
    lost, after the question ``lost_at``), or only ``summary`` and the turns' count when
    given; check that it was booked, with one greeting and each question asked once."""
    ok, entry = await wait_for(
        lambda: world.sim_call(call_id), lambda c: c.get("status") != "playing", timeout_s=60
    )
    transcript = entry.get("transcript") or []
    if summary is not None:
        story.say(f"  {len(transcript)} turns spoken on the socket; {summary}")
    for turn in transcript if summary is None else []:
        who = "agent  " if turn["role"] == "agent" else "patient"
        story.say(f"  {who}: {turn['content']}")
        if lost_at and lost_at in turn["content"].lower():
            story.say("  (the socket is lost here; Retell opens it again for the same call)")
            lost_at = None
    story.expect(
        f"{label}: booked to the end: the agent hung up after the booking, socket closed 1000",
        "simulator",
        ok
        and entry.get("status") == "done"
        and entry.get("disconnection_reason") == "agent_hangup"
        and entry.get("ws_close_code") == 1000,
        f"{entry.get('status')}, {entry.get('disconnection_reason')}, "
        f"close {entry.get('ws_close_code')}",
    )
    agent = [t["content"].lower() for t in entry.get("transcript") or [] if t["role"] == "agent"]
    greetings = sum(any(g in text for g in GREETINGS) for text in agent)
    asked = {q: sum(q in text for text in agent) for q in ("date of birth", "which day")}
    story.expect(
        f"{label}: one greeting; the date of birth and the day each asked once",
        "simulator (what the agent said)",
        greetings == 1 and set(asked.values()) == {1},
        f"greetings={greetings}, asked={asked}",
    )
    return entry


def _requests(story: Story, entry: dict[str, Any], label: str) -> None:
    """The interrupted call's first requests: the name cut short then whole, the date of birth
    twice with the same words (so the situation really was played)."""
    requests = [tuple(r) for r in entry.get("requests") or []][:4]
    for number, words in requests:
        story.say(f"  Retell asks for reply #{number} to: {words!r}")
    name = f"My name is {NAME}"
    cut = name.rsplit(" ", 1)[0]
    ok = (
        len(requests) == 4
        and [w for _, w in requests[:2]] == [cut, name]
        and requests[2][1] == requests[3][1]
    )
    story.expect(
        f"{label}: cut short mid-answer, then asked twice back to back",
        "simulator (requests)",
        ok,
        str([w for _, w in requests]),
    )


def _ref(entry: dict[str, Any]) -> str:
    """ringlog's call ref for a simulated call: the one its inbound answer named, else
    ``retell:<call_id>``."""
    named = (entry.get("metadata") or {}).get("call_ref")
    return str(named) if named else f"retell:{entry['call_id']}"


async def _booked_session(
    world: World,
    story: Story,
    phone: str,
    entry: dict[str, Any],
    label: str,
    *,
    name: str | None = None,
) -> None:
    """The caller's session completed in this one call (with the whole name) and the CRM holds
    one appointment for it."""
    ok, session = await wait_for(
        lambda: world.session(phone), lambda s: s.get("status") == "completed", timeout_s=20
    )
    refs, slots = session.get("call_refs"), session.get("slots") or {}
    fine = ok and refs == [_ref(entry)] and (name is None or slots.get("name") == name)
    story.expect(
        f"{label}: session completed in this one call"
        + (", named with her whole name" if name else ""),
        "sessions topic → GET /v1/sessions",
        fine,
        f"status={session.get('status')} calls={refs} name={slots.get('name')!r}",
    )
    engine = create_engine(world.settings.crm.url)
    query = select(func.count()).where(APPOINTMENTS.c.session_id == str(session.get("session_id")))

    async def appointments() -> int:
        def count() -> int:
            with engine.connect() as connection:
                return int(connection.execute(query).scalar_one())

        return await asyncio.to_thread(count)

    try:
        ok, count = await wait_for(appointments, lambda n: n >= 1, timeout_s=20)
    finally:
        engine.dispose()
    story.expect(
        f"{label}: the booking stored once",
        "CRM (crm_appointments)",
        ok and count == 1,
        f"{count} rows",
    )


async def _timeline(world: World, ref: str) -> list[dict[str, Any]]:
    response = await world.api.get(f"/v1/calls/{ref}/events", headers=world.auth)
    events: list[dict[str, Any]] = response.json() if response.status_code == 200 else []
    return events


async def _turns(world: World, story: Story, entry: dict[str, Any], label: str) -> None:
    """The call's turns on the log are what was spoken, each once, numbered without gaps."""
    spoken = [(t["role"], t["content"]) for t in entry.get("transcript") or []]
    ref = _ref(entry)

    def turns(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e["payload"] for e in events if e["type"] == DialogTurn.event_type]

    ok, events = await wait_for(
        lambda: _timeline(world, ref), lambda e: len(turns(e)) >= len(spoken), timeout_s=20
    )
    logged = turns(events)
    said = [(t["role"], t["text"]) for t in logged]
    indexes = [t["turn_index"] for t in logged]
    story.expect(
        f"{label}: every turn recorded once, as spoken (no duplicate, no unspoken reply)",
        "dialog topic → GET /v1/calls/{ref}/events",
        ok and said == spoken and indexes == list(range(len(spoken))),
        f"{len(logged)} turns logged, {len(spoken)} spoken",
    )


async def _two_hours(world: World, story: Story, entry: dict[str, Any], label: str) -> None:
    """Every webhook of the 2-hour call was accepted; its one ``call_ended`` is on the log."""
    posted = [(d["event"], d.get("status_code")) for d in entry.get("deliveries") or []]
    story.expect(
        f"{label}: its webhooks accepted (call_ended is about 1.4 MiB)",
        "POST /v1/webhooks/retell",
        [e for e, _ in posted] == WEBHOOKS and all(c is not None and c < 300 for _, c in posted),
        str(posted),
    )
    ref = _ref(entry)

    async def state() -> dict[str, Any]:
        response = await world.api.get(f"/v1/calls/{ref}", headers=world.auth)
        return response.json() if response.status_code == 200 else {}

    ok, call = await wait_for(state, lambda c: "call_ended" in (c.get("seen") or []), timeout_s=20)
    events = await _timeline(world, ref)
    ended = [e for e in events if e["type"] == RetellCallEnded.event_type]
    story.expect(
        f"{label}: call_ended landed once, with its 2-hour duration",
        "calls topic → GET /v1/calls/{ref}",
        ok and call.get("duration_ms") == MAX_CALL_DURATION_MS and len(ended) == 1,
        f"duration_ms={call.get('duration_ms')}, call_ended x{len(ended)}",
    )

"""Seed 003 end to end: POST /v1/calls → worker → simulator (Retell) → webhooks → ABT.

Everything is real: the API and the simulator are served by uvicorn on loopback ports, the
worker is a ``ringlog worker`` process (so it can be killed), the broker is the session's Tansu,
and call records go to the local PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ringlog.api.app import create_app
from ringlog.config import CrmSettings, Settings, SimulatorSettings
from ringlog.schemas import Envelope
from ringlog.schemas.abt import AbtEvent
from ringlog.schemas.calls import CallDispatched, CallDispatchFailed, CallRequested
from ringlog.schemas.tasks import TaskDeleted, TaskRescheduled
from ringlog.simulator import Faults, create_simulator
from ringlog.streams.deadletter import HEADER_ERROR, HEADER_ORIGIN, HEADER_PROCESSOR
from ringlog.streams.producer import LogProducer
from tests.integration.test_api_ingest import AUTH, RETELL_KEY, api_settings
from tests.support.logread import envelopes, eventually, group_lag, records
from tests.support.postgres import POSTGRES_URL
from tests.support.servers import WorkerProcess, serving

pytestmark = pytest.mark.integration

ALL_THREE = ["voice_call_initiated", "call_started", "call_completed"]


@dataclass
class Outbound:
    """The running pipeline of one test."""

    settings: Settings
    api: httpx.AsyncClient
    sim: httpx.AsyncClient
    worker: WorkerProcess
    group: str

    async def place_call(self, **extra: object) -> str:
        """Ask for an outbound call as an upstream trigger would; return its call ref."""
        body = {"to_number": "+14155550123", "from_number": "+14155559876", "task_ref": "t-1"}
        response = await self.api.post("/v1/calls", json=body | extra, headers=AUTH)
        assert response.status_code == 202, response.text
        ref = response.json()["call_ref"]
        assert isinstance(ref, str)
        return ref

    async def set_faults(self, **faults: object) -> None:
        """Switch the simulator's fault injection for the calls created from now on."""
        response = await self.sim.put("/sim/faults", json=Faults(**faults).model_dump())  # type: ignore[arg-type]
        assert response.status_code == 200, response.text

    async def abt(self, ref: str) -> list[str]:
        """The ABT activities of ``ref`` on the abt topic, in order."""
        found = await envelopes(self.settings.kafka, self.settings.topic("abt"), ref)
        names = []
        for envelope in found:
            assert isinstance(envelope.payload, AbtEvent)
            names.append(envelope.payload.name)
        return names

    async def calls(self, ref: str) -> list[Envelope]:
        """The events of ``ref`` on the calls topic."""
        return await envelopes(self.settings.kafka, self.settings.topic("calls"), ref)

    async def simulated(self) -> dict[str, object]:
        """The simulator's account of create requests and calls."""
        answer: dict[str, object] = (await self.sim.get("/sim/calls")).json()
        return answer

    async def settled(self) -> None:
        """Wait until the simulator delivered everything and the worker committed all of it."""
        await eventually(
            self.simulated,
            lambda s: all(c["status"] == "done" for c in s["calls"]),  # type: ignore[attr-defined]
        )
        await eventually(
            lambda: group_lag(self.settings.kafka, self.group, self.settings.topic("calls")),
            lambda lag: lag == 0,
        )


def call_record(ref: str) -> dict[str, object] | None:
    """The row the lifecycle processor stored for ``ref``."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("select * from call_records where call_ref = :ref"), {"ref": ref}
            ).first()
    finally:
        engine.dispose()
    return dict(row._mapping) if row else None


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra worker settings of a test (tests override this by parametrizing it)."""
    return {}


@pytest.fixture(name="outbound")
async def _outbound(
    topics: Settings, unique: str, tmp_path: Path, worker_env: dict[str, str]
) -> AsyncIterator[Outbound]:
    group = f"worker-{unique}"
    # the API reads the views the worker keeps: both on the one database
    settings = api_settings(topics).model_copy(update={"crm": CrmSettings(url=POSTGRES_URL)})
    api_app = create_app(settings)
    with serving(api_app) as api_url:
        sim_settings = settings.model_copy(
            update={
                "simulator": SimulatorSettings(
                    webhook_url=f"{api_url}/v1/webhooks/retell",
                    ring_s=0.05,
                    talk_s=0.2,
                    analysis_s=0.1,
                )
            }
        )
        with serving(create_simulator(sim_settings)) as sim_url:
            worker = WorkerProcess(
                {
                    "RINGLOG_KAFKA_TOPIC_PREFIX": topics.kafka.topic_prefix,
                    "RINGLOG_WORKER_APP_ID": group,
                    "RINGLOG_RETELL_API_KEY": RETELL_KEY,
                    "RINGLOG_RETELL_BASE_URL": sim_url,
                    "RINGLOG_CRM_URL": POSTGRES_URL,
                    "RINGLOG_WORKER_DISPATCH_BACKOFF_S": "0.05",
                    "RINGLOG_WORKER_DISPATCH_POLL_S": "0.2",
                }
                | worker_env,
                tmp_path / "worker.log",
            )
            worker.start()
            async with (
                httpx.AsyncClient(base_url=api_url) as api,
                httpx.AsyncClient(base_url=sim_url) as sim,
            ):
                try:
                    yield Outbound(topics, api, sim, worker, group)
                finally:
                    worker.stop()
                    print(worker.output()[-4000:])


async def test_a_call_request_yields_exactly_the_three_abt_events_in_order(
    outbound: Outbound,
) -> None:
    ref = await outbound.place_call()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    await outbound.settled()
    assert await outbound.abt(ref) == ALL_THREE
    record = call_record(ref)
    assert record is not None and record["status"] == "ended" and record["connected"]
    assert record["summary"] and record["task_ref"] == "t-1"
    types = [e.type for e in await outbound.calls(ref)]
    assert types.count("call.requested") == 1 and types.count("call.dispatched") == 1
    assert types.count("call.recorded") == 1


async def test_duplicate_and_reordered_webhooks_still_yield_exactly_three(
    outbound: Outbound,
) -> None:
    await outbound.set_faults(duplicate=True, reorder=True)
    ref = await outbound.place_call()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    await outbound.settled()
    assert await outbound.abt(ref) == ALL_THREE
    retell_events = [e.type for e in await outbound.calls(ref) if e.type.startswith("retell.")]
    assert len(retell_events) == 6, "every delivery is kept, duplicates included"


async def test_a_dial_failure_yields_initiated_only_and_a_not_connected_record(
    outbound: Outbound,
) -> None:
    await outbound.set_faults(dial_failure=True)
    ref = await outbound.place_call()
    await eventually(lambda: _recorded(ref), lambda row: row is not None)
    await outbound.settled()
    assert await outbound.abt(ref) == ["voice_call_initiated"]
    record = call_record(ref)
    assert record is not None
    assert record["status"] == "not_connected" and not record["connected"]
    assert record["disconnection_reason"] == "dial_failed"


async def test_a_rate_limited_create_is_retried_into_one_retell_call(outbound: Outbound) -> None:
    await outbound.set_faults(rate_limit_first=1)
    ref = await outbound.place_call()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    await outbound.settled()
    simulated = await outbound.simulated()
    assert simulated["create_requests"] == 2, "one 429, then the call"
    assert len(simulated["calls"]) == 1  # type: ignore[arg-type]
    dispatched = [e for e in await outbound.calls(ref) if e.type == "call.dispatched"]
    assert len(dispatched) == 1 and dispatched[0].payload.attempt == 2  # type: ignore[union-attr]


async def test_a_worker_killed_mid_call_resumes_without_duplicates(outbound: Outbound) -> None:
    await outbound.set_faults(delay_analyzed_s=2.0)
    ref = await outbound.place_call()
    await eventually(lambda: outbound.abt(ref), lambda n: "call_started" in n)
    outbound.worker.kill()
    outbound.worker.start()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    await outbound.settled()
    assert await outbound.abt(ref) == ALL_THREE
    simulated = await outbound.simulated()
    assert len(simulated["calls"]) == 1  # type: ignore[arg-type]
    types = [e.type for e in await outbound.calls(ref)]
    assert types.count("call.dispatched") == 1 and types.count("call.recorded") == 1


async def test_a_replay_by_a_fresh_worker_emits_nothing_new(
    outbound: Outbound, tmp_path: Path
) -> None:
    ref = await outbound.place_call()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    await outbound.settled()
    outbound.worker.stop()
    # a new consumer group reads the calls topic from the beginning, like a replay
    outbound.group = f"{outbound.group}-replay"
    replay = WorkerProcess(
        {**outbound.worker.env, "RINGLOG_WORKER_APP_ID": outbound.group}, tmp_path / "replay.log"
    )
    replay.start()
    try:
        await eventually(
            lambda: group_lag(
                outbound.settings.kafka, outbound.group, outbound.settings.topic("calls")
            ),
            lambda lag: lag == 0,
        )
    finally:
        replay.stop()
    assert await outbound.abt(ref) == ALL_THREE
    types = [e.type for e in await outbound.calls(ref)]
    assert types.count("call.dispatched") == 1 and types.count("call.recorded") == 1
    assert len((await outbound.simulated())["calls"]) == 1  # type: ignore[arg-type]


async def test_an_unreadable_event_is_dead_lettered_and_the_call_carries_on(
    outbound: Outbound,
) -> None:
    ref = await outbound.place_call()
    calls_topic = outbound.settings.topic("calls")
    async with LogProducer(outbound.settings.kafka) as log:
        await log.append_raw(calls_topic, b"{not an event", key=ref.encode())
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    dead = await records(outbound.settings.kafka, outbound.settings.topic("deadletter"))
    assert [r.value for r in dead] == [b"{not an event"]
    headers = dict(dead[0].headers)
    assert headers[HEADER_PROCESSOR] == b"projection:call-lifecycle"
    assert headers[HEADER_ORIGIN].startswith(calls_topic.encode())
    assert b"DecodeError" in headers[HEADER_ERROR]


@pytest.mark.parametrize(
    "worker_env",
    [{"RINGLOG_WORKER_DISPATCH_ATTEMPTS": "2", "RINGLOG_WORKER_DISPATCH_COOLDOWN_S": "1"}],
)
async def test_a_retell_outage_keeps_the_request_pending_until_it_can_be_placed(
    outbound: Outbound,
) -> None:
    await outbound.set_faults(server_error_first=3)
    ref = await outbound.place_call()
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    outcomes = [e.payload for e in await outbound.calls(ref) if e.type.startswith("call.dispatch")]
    assert [type(o) for o in outcomes] == [CallDispatchFailed, CallDispatched]
    failed = outcomes[0]
    assert isinstance(failed, CallDispatchFailed)
    assert not failed.permanent and failed.attempts == 2 and "500" in failed.reason


async def test_a_scheduled_request_is_placed_at_its_time(outbound: Outbound) -> None:
    at = _in_seconds(3)
    ref = await outbound.place_call(scheduled_at=at.isoformat())
    await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 1)
    dispatched = [e for e in await outbound.calls(ref) if e.type == "call.dispatched"]
    assert len(dispatched) == 1 and dispatched[0].occurred_at >= at


@pytest.mark.parametrize("worker_env", [{"RINGLOG_RETELL_MAX_CONCURRENT_CALLS": "1"}])
async def test_the_concurrency_cap_holds_back_the_second_call(outbound: Outbound) -> None:
    first, second = await outbound.place_call(), await outbound.place_call()
    for ref in (first, second):
        await eventually(lambda ref=ref: outbound.abt(ref), lambda n: len(n) >= 3)
    events = {ref: await outbound.calls(ref) for ref in (first, second)}
    placed = sorted(events, key=lambda r: _time_of(events[r], "call.dispatched"))
    earlier, later = placed
    # the first call is over once Retell says it ended or was analysed, whichever webhook
    # arrives first (the simulator sends both at once, so either may be appended first)
    over = min(
        e.recorded_at
        for e in events[earlier]
        if e.type in ("retell.call_ended", "retell.call_analyzed")
    )
    assert _time_of(events[later], "call.dispatched") >= over, (
        "the second call waits until the first one ended"
    )


async def test_a_rescheduled_task_places_its_call_at_the_new_time(outbound: Outbound) -> None:
    task = f"task-{uuid.uuid4().hex[:8]}"
    ref = await outbound.place_call(task_ref=task, scheduled_at=_in_seconds(3600).isoformat())
    await eventually(lambda: outbound.calls(ref), lambda e: len(e) >= 1)
    new_time = _in_seconds(2)
    response = await outbound.api.post(
        f"/v1/tasks/{task}/reschedule", json={"scheduled_at": new_time.isoformat()}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    events = await outbound.calls(ref)
    types = [e.type for e in events]
    assert types.count("call.rescheduled") == 1 and types.count("call.dispatched") == 1
    assert types.index("call.rescheduled") < types.index("call.dispatched")
    assert _time_of(events, "call.dispatched") >= new_time


async def test_a_deleted_task_stops_its_scheduled_call(outbound: Outbound) -> None:
    task = f"task-{uuid.uuid4().hex[:8]}"
    due = _in_seconds(6)  # room for the deletion to land first, even on a loaded machine
    doomed = await outbound.place_call(task_ref=task, scheduled_at=due.isoformat())
    await eventually(lambda: outbound.calls(doomed), lambda e: len(e) >= 1)
    response = await outbound.api.request(
        "DELETE", f"/v1/tasks/{task}", json={"reason": "patient declined"}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    await eventually(
        lambda: outbound.calls(doomed), lambda e: any(x.type == "call.cancelled" for x in e)
    )
    # a probe due just after the doomed call: once it is placed, the doomed one's time has passed
    probe = await outbound.place_call(scheduled_at=(due + timedelta(seconds=1)).isoformat())
    await eventually(lambda: outbound.abt(probe), lambda n: len(n) >= 1)
    assert [e.type for e in await outbound.calls(doomed)] == ["call.requested", "call.cancelled"]
    assert await outbound.abt(doomed) == []
    simulated = await outbound.simulated()
    assert simulated["create_requests"] == 1, "only the probe reached Retell"


async def _task_event_folded_before_its_request(
    outbound: Outbound, task_event: TaskRescheduled | TaskDeleted, **request: object
) -> str:
    """Append a task event, wait until the worker consumed it, then append the task's earlier
    call request: the order the worker sees when ``tasks`` runs ahead of ``calls``."""
    ref = f"call-{uuid.uuid4().hex[:8]}"
    asked_at = datetime.now(UTC)
    settings = outbound.settings
    async with LogProducer(settings.kafka) as log:
        await log.append(
            Envelope.new(task_event, source="test", occurred_at=asked_at + timedelta(seconds=1))
        )
        await eventually(
            lambda: group_lag(settings.kafka, outbound.group, settings.topic("tasks")),
            lambda lag: lag == 0,
        )
        call = CallRequested(
            call_ref=ref,
            to_number="+14155550123",
            from_number="+14155559876",
            agent_id="agent-test",
            task_ref=task_event.task_id,
            **request,  # type: ignore[arg-type]
        )
        await log.append(Envelope.new(call, source="test", occurred_at=asked_at))
    return ref


async def test_a_reschedule_consumed_before_its_call_request_still_moves_the_call(
    outbound: Outbound,
) -> None:
    task, new_time = f"task-{uuid.uuid4().hex[:8]}", _in_seconds(2)
    ref = await _task_event_folded_before_its_request(
        outbound,
        TaskRescheduled(task_id=task, scheduled_at=new_time),
        scheduled_at=_in_seconds(3600),
    )
    assert await eventually(lambda: outbound.abt(ref), lambda n: len(n) >= 3) == ALL_THREE
    events = await outbound.calls(ref)
    assert [e.type for e in events][:3] == ["call.requested", "call.rescheduled", "call.dispatched"]
    assert _time_of(events, "call.dispatched") >= new_time


async def test_a_deletion_consumed_before_its_due_call_request_stops_the_call(
    outbound: Outbound,
) -> None:
    doomed = await _task_event_folded_before_its_request(
        outbound, TaskDeleted(task_id=f"task-{uuid.uuid4().hex[:8]}")
    )
    await eventually(
        lambda: outbound.calls(doomed), lambda e: any(x.type == "call.cancelled" for x in e)
    )
    probe = await outbound.place_call()  # placed after the doomed call was due
    await eventually(lambda: outbound.abt(probe), lambda n: len(n) >= 1)
    assert [e.type for e in await outbound.calls(doomed)] == ["call.requested", "call.cancelled"]
    assert (await outbound.simulated())["create_requests"] == 1, "only the probe reached Retell"


def _time_of(events: list[Envelope], event_type: str) -> datetime:
    return next(e.recorded_at for e in events if e.type == event_type)


def _in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def _recorded(ref: str) -> dict[str, object] | None:
    return call_record(ref)

"""The worker group at scale: several processes share the partitions of ``calls``.

Each call is placed once and gets each ABT event once, whether requested before or after the
workers start, immediate or scheduled, and when a worker is SIGKILLed mid-traffic (its
partitions move to the others, which resume from the store's checkpoints). A worker restarted
against a long log is ready as fast as against a short one, without growing with history, and
a call for now is placed at once however many calls are scheduled for later.

Everything is real: Tansu, the local PostgreSQL (the worker's store and call records), the
API and the simulator in uvicorn threads, each worker a ``ringlog worker`` process.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from ringlog.api.app import create_app
from ringlog.cli import app as cli_app
from ringlog.config import Settings, SimulatorSettings
from ringlog.schemas import REGISTRY, Envelope
from ringlog.schemas.abt import AbtEvent
from ringlog.schemas.calls import CallRequested
from ringlog.simulator import create_simulator
from ringlog.streams.producer import LogProducer
from ringlog.worker.views import WorkerViews
from tests.integration.test_api_ingest import RETELL_KEY, api_settings
from tests.support.examples import retell_call
from tests.support.logread import eventually, group_lag, records
from tests.support.postgres import POSTGRES_URL
from tests.support.servers import WorkerProcess, serving

pytestmark = pytest.mark.integration

ALL_THREE = ("voice_call_initiated", "call_started", "call_completed")
#: Ended calls on the log behind the long-log restart (two webhooks each).
HISTORY = 20_000


@dataclass
class Group:
    """A worker group of one test: its processes, the simulator, the log."""

    settings: Settings
    sim: httpx.AsyncClient
    env: dict[str, str]
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.tmp / f"worker-{len(self.workers)}.log")
        worker.start()
        self.workers.append(worker)
        return worker

    async def request(self, count: int, *, in_s: float = 0.0) -> list[str]:
        """Append ``count`` call requests due in ``in_s`` seconds; return their refs."""
        due = datetime.now(UTC) + timedelta(seconds=in_s) if in_s else None
        refs = [f"call-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        async with LogProducer(self.settings.kafka) as log:
            await log.append_many(
                [
                    Envelope.new(
                        CallRequested(
                            call_ref=ref,
                            to_number="+14155550123",
                            from_number="+14155559876",
                            agent_id="agent-test",
                            scheduled_at=due,
                        ),
                        source="test",
                    )
                    for ref in refs
                ]
            )
        return refs

    async def ended_calls(self, count: int) -> None:
        """Append the webhooks of ``count`` ended calls no one requested (inbound history)."""
        batch: list[Envelope] = []
        async with LogProducer(self.settings.kafka) as log:
            for _ in range(count):
                call_id = uuid.uuid4().hex
                for event in ("call_started", "call_ended"):
                    call = retell_call(event) | {"call_id": call_id, "metadata": {}}
                    model = REGISTRY.model_for(f"retell.{event}", 2)
                    batch.append(
                        Envelope.new(
                            model.from_body({"event": event, "call": call}),
                            source="test",
                        )
                    )
                if len(batch) >= 5_000:
                    await log.append_many(batch)
                    batch.clear()
            await log.append_many(batch)

    async def caught_up(self) -> None:
        """Wait until the worker group has folded everything on ``calls``."""
        await eventually(
            lambda: group_lag(
                self.settings.kafka, self.env["RINGLOG_WORKER_APP_ID"], self.settings.topic("calls")
            ),
            lambda lag: lag == 0,
            timeout_s=240,
        )

    async def abt(self) -> dict[str, list[str]]:
        """ABT names per call ref, in log order."""
        found: dict[str, list[str]] = collections.defaultdict(list)
        for record in await records(self.settings.kafka, self.settings.topic("abt")):
            assert record.envelope is not None
            payload = record.envelope.payload
            assert isinstance(payload, AbtEvent)
            found[payload.call_ref].append(payload.name)
        return found

    async def dispatched(self) -> collections.Counter[str]:
        """How many ``call.dispatched`` each call ref has on the log."""
        return collections.Counter(
            r.envelope.key
            for r in await records(self.settings.kafka, self.settings.topic("calls"))
            if r.envelope is not None and r.envelope.type == "call.dispatched"
        )

    async def simulated(self) -> dict[str, object]:
        answer: dict[str, object] = (await self.sim.get("/sim/calls")).json()
        return answer

    async def assert_exactly_once(self, refs: list[str]) -> None:
        """Every ref: one Retell call, one ``call.dispatched``, each ABT event once, in order."""
        abt = await eventually(
            self.abt, lambda found: all(len(found[r]) >= 3 for r in refs), timeout_s=120
        )
        for ref in refs:
            assert tuple(abt[ref]) == ALL_THREE, (ref, abt[ref])
        assert set(abt) == set(refs)
        dispatched = await self.dispatched()
        assert {r: dispatched[r] for r in refs} == dict.fromkeys(refs, 1)
        simulated = await self.simulated()
        placed = collections.Counter(
            c["idempotency_key"]  # type: ignore[index]
            for c in simulated["calls"]  # type: ignore[attr-defined]
        )
        assert placed == collections.Counter(refs), "one Retell call per call ref"


@pytest.fixture(name="group")
async def _group(topics: Settings, unique: str, tmp_path: Path) -> AsyncIterator[Group]:
    with ExitStack() as stack:
        api_url = stack.enter_context(serving(create_app(api_settings(topics))))
        sim_settings = api_settings(topics).model_copy(
            update={
                "simulator": SimulatorSettings(
                    webhook_url=f"{api_url}/v1/webhooks/retell",
                    ring_s=0.05,
                    talk_s=0.2,
                    analysis_s=0.1,
                )
            }
        )
        sim_url = stack.enter_context(serving(create_simulator(sim_settings)))
        env = {
            "RINGLOG_KAFKA_TOPIC_PREFIX": topics.kafka.topic_prefix,
            "RINGLOG_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "RINGLOG_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "RINGLOG_WORKER_APP_ID": f"worker-{unique}",
            "RINGLOG_WORKER_DISPATCH_BACKOFF_S": "0.05",
            "RINGLOG_WORKER_DISPATCH_POLL_S": "0.2",
            "RINGLOG_WORKER_DISPATCH_LEASE_S": "15",
            "RINGLOG_RETELL_API_KEY": RETELL_KEY,
            "RINGLOG_RETELL_BASE_URL": sim_url,
            "RINGLOG_RETELL_MAX_CONCURRENT_CALLS": "200",
            "RINGLOG_CRM_URL": POSTGRES_URL,
        }
        async with httpx.AsyncClient(base_url=sim_url) as sim:
            group = Group(topics, sim, env, tmp_path)
            try:
                yield group
            finally:
                for worker in group.workers:
                    worker.stop()
                for worker in group.workers:
                    print(worker.output()[-3000:])


@pytest.mark.parametrize("processes", [2, 3])
async def test_every_call_is_placed_once_by_a_group_of_workers(
    group: Group, processes: int
) -> None:
    before = await group.request(12) + await group.request(12, in_s=6)
    for _ in range(processes):
        group.start_worker()
    after = await group.request(12) + await group.request(12, in_s=4)
    await group.assert_exactly_once(before + after)
    served = [w for w in group.workers if "worker ready" in w.output()]
    assert len(served) == processes, "every process took a share of the partitions"


async def test_a_killed_worker_s_partitions_move_and_nothing_is_doubled(group: Group) -> None:
    workers = [group.start_worker() for _ in range(3)]
    await eventually(lambda: _ready_count(group), lambda n: n == 3, timeout_s=60)
    first = await group.request(30)
    scheduled = await group.request(15, in_s=3)
    await eventually(group.dispatched, lambda d: sum(d.values()) >= 10, timeout_s=60)
    workers[0].kill()
    later = await group.request(15)
    await group.assert_exactly_once(first + scheduled + later)


async def test_a_call_for_now_is_placed_at_once_behind_a_large_scheduled_book(
    group: Group,
) -> None:
    group.start_worker()
    await eventually(lambda: _ready_count(group), lambda n: n == 1, timeout_s=60)
    empty = await _time_to_place(group)
    await group.request(20_000, in_s=30 * 24 * 3600)
    await group.caught_up()
    busy = await _time_to_place(group)
    assert busy < max(3 * empty, empty + 2.0), (empty, busy)


async def test_a_restarted_worker_is_ready_as_fast_on_a_long_log(group: Group) -> None:
    worker = group.start_worker()
    short_refs = await group.request(3)
    await group.assert_exactly_once(short_refs)
    short_ready, short_rss = await _restart(group, worker)

    await group.ended_calls(HISTORY)
    await group.caught_up()
    long_ready, long_rss = await _restart(group, worker)
    assert long_ready < short_ready + 2.0, (short_ready, long_ready)
    assert long_rss < short_rss * 1.25 + 20 * 2**20, (short_rss, long_rss)
    (probe,) = await group.request(1)
    await group.assert_exactly_once([*short_refs, probe])


async def test_a_replayed_worker_folds_the_log_again_and_emits_nothing_twice(
    group: Group,
) -> None:
    """``ringlog replay call-lifecycle --to-earliest`` is refused while the worker runs; once
    it is stopped, its state is rewound to the log's start and, restarted, it folds every
    call again: each call keeps one dispatch and each ABT event once (their ids are derived
    from the call, and the worker folds them back before it settles anything)."""
    worker = group.start_worker()
    refs = await group.request(4)
    await group.assert_exactly_once(refs)
    before = await _abt_ids(group)
    store = WorkerViews.open(
        POSTGRES_URL,
        calls_topic=group.settings.topic("calls"),
        tasks_topic=group.settings.topic("tasks"),
        abt_topic=group.settings.topic("abt"),
    )
    states = {ref: await store.call(ref) for ref in refs}
    assert all(s is not None and s.phase == "ended" for s in states.values()), states
    code, out = await _replay(group, "--to-earliest")
    assert code == 2 and "is running" in out, out
    worker.stop()
    # Tansu keeps listing a member that left the group: the operator vouches with --force
    code, out = await _replay(group, "--to-earliest", "--dry-run")
    assert code == 0 and "dry run: nothing changed" in out, out
    code, out = await _replay(group, "--to-earliest", "--force")
    assert code == 0 and "call-lifecycle rewound" in out, out
    prefix = group.settings.kafka.topic_prefix
    mine = {tp: n for tp, n in (await store.load_checkpoint()).items() if tp[0].startswith(prefix)}
    assert mine == {}, "rewound to the log's start"
    assert [await store.call(ref) for ref in refs] == [None] * len(refs)
    marks = worker.output().count("worker ready")
    worker.start()
    await eventually(lambda: _marks(worker), lambda n: n > marks, timeout_s=60)
    await group.caught_up()
    later = await group.request(1)  # and it still places new calls
    await group.assert_exactly_once([*refs, *later])
    after = await _abt_ids(group)
    assert {r: after[r] for r in refs} == before
    assert {ref: await store.call(ref) for ref in refs} == states, "folded again, the same"
    store.close()


async def _replay(group: Group, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["replay", "call-lifecycle", *args],
        env=group.env,
        catch_exceptions=False,
    )
    return result.exit_code, result.output


async def _abt_ids(group: Group) -> dict[str, list[str]]:
    """ABT event ids per call ref, in log order."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for record in await records(group.settings.kafka, group.settings.topic("abt")):
        assert record.envelope is not None
        found[record.envelope.key].append(str(record.envelope.event_id))
    return found


async def _ready_count(group: Group) -> int:
    return sum("worker ready" in w.output() for w in group.workers)


async def _time_to_place(group: Group) -> float:
    started = time.monotonic()
    (ref,) = await group.request(1)
    await eventually(group.dispatched, lambda d: d[ref] == 1, timeout_s=60, interval_s=0.05)
    return time.monotonic() - started


async def _restart(group: Group, worker: WorkerProcess) -> tuple[float, int]:
    """Restart ``worker``; return its own start-to-ready seconds and its RSS once ready."""
    worker.stop()
    marks = worker.output().count("worker ready")
    worker.start()
    await eventually(lambda: _marks(worker), lambda n: n > marks, timeout_s=60, interval_s=0.05)
    seconds = [
        float(s) for s in re.findall(r'"seconds":([0-9.]+),"event":"worker ready"', worker.output())
    ]
    assert worker.pid is not None
    return seconds[-1], psutil.Process(worker.pid).memory_info().rss


async def _marks(worker: WorkerProcess) -> int:
    return worker.output().count("worker ready")

"""Which bridges the settings configure, topic names, running loops together, and the
``ringlog bridge`` command line (help without clients, ``--as`` checked before anything)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.service import SqsIn, SqsOut, configured_bridges, logical_topic
from ringlog.bridges.together import run_together
from ringlog.config import Settings, SqsSettings
from ringlog.errors import ConfigurationError
from tests.unit.test_cli_help import HEAVY, imported_by


def with_sqs(**changes: str) -> Settings:
    return Settings(sqs=SqsSettings(**changes))


def test_every_queue_set_has_its_bridge() -> None:
    bridges = configured_bridges(
        with_sqs(
            call_requests_queue="calls-in",
            webhook_events_queue="https://sqs.eu-west-1.amazonaws.com/1/retell",
            outbound_queue="abt-out.fifo",
        )
    )
    assert bridges == [
        SqsIn("calls-in", InboundKind.CALL_REQUEST),
        SqsIn("https://sqs.eu-west-1.amazonaws.com/1/retell", InboundKind.RETELL_EVENT),
        SqsOut("abt", "abt-out.fifo"),
    ]
    assert bridges[0].describe() == "sqs-in calls-in as call-request"
    assert bridges[2].describe() == "sqs-out abt to abt-out.fifo"


def test_an_empty_queue_setting_turns_its_bridge_off() -> None:
    only_out = configured_bridges(with_sqs(call_requests_queue="", webhook_events_queue=""))
    assert [type(b) for b in only_out] == [SqsOut]
    none = with_sqs(call_requests_queue="", webhook_events_queue="", outbound_queue="")
    assert configured_bridges(none) == []


def test_the_topic_is_a_declared_one() -> None:
    assert logical_topic("abt") == "abt"
    with pytest.raises(ConfigurationError, match="'abd' is not a ringlog topic"):
        logical_topic("abd")


class Boom(RuntimeError):
    pass


async def test_the_first_failure_stops_the_others_cleanly_and_is_raised_as_is() -> None:
    stopped: list[str] = []

    async def waits(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.append("waited")

    async def fails(stop: asyncio.Event) -> None:
        await asyncio.sleep(0)
        raise Boom("first")

    with pytest.raises(Boom, match="first"):
        await asyncio.wait_for(run_together([waits, fails, waits]), 5)
    assert stopped == ["waited", "waited"]


async def test_loops_run_until_stop_and_nothing_is_a_no_op() -> None:
    stop = asyncio.Event()
    ran: list[int] = []

    async def loop(inner: asyncio.Event) -> None:
        await inner.wait()
        ran.append(1)

    task = asyncio.create_task(run_together([loop, loop], stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert ran == [1, 1]
    await asyncio.wait_for(run_together([], stop), 1)


def test_bridge_help_imports_no_client() -> None:
    for args in (("bridge", "--help"), ("bridge", "sqs-in", "--help")):
        assert not imported_by(*args) & HEAVY


def test_an_unknown_kind_is_refused_by_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ringlog", "bridge", "sqs-in", "--queue", "q", "--as", "fax"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--as" in done.stderr

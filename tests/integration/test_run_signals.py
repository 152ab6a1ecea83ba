"""`ringlog run` and its processes under a supervisor: SIGTERM, SIGKILL, a second run, a
broker that is gone.

Every test runs in a home of its own (``RINGLOG_HOME``) on free ports, with no ``RINGLOG_*``
variable of the caller's, so it never touches a developer's stack. "The processes of a home"
are those whose environment names it as ``RINGLOG_HOME`` (every process ``ringlog run``
starts inherits it) or whose command line mentions it, found with psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from ringlog import devstack
from ringlog.config import HOME_ENV, Settings
from ringlog.streams.admin import ensure_topics
from ringlog.streams.topics import TOPICS
from tests.support.ringlog_run import Run, isolated_env, processes_of, wait_for

pytestmark = pytest.mark.integration

#: What a supervisor allows between SIGTERM (or the parent's death) and the end of a process.
STOP_S = 10.0


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """`ringlog run` in a home of its own, running; killed (with its home's processes) after."""
    started = Run(isolated_env(tmp_path / "home"))
    try:
        started.wait_running()
        yield started
    finally:
        started.kill()


def watch_exits(pids: set[int], timeout_s: float) -> dict[int, float]:
    """Poll until every pid has exited (or ``timeout_s``); return each one's exit time seen."""
    gone: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(gone) < len(pids) and time.monotonic() < deadline:
        for pid in pids - gone.keys():
            try:
                running = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                running = False
            if not running:
                gone[pid] = time.monotonic()
        time.sleep(0.02)
    return gone


def test_sigterm_stops_the_children_then_the_stack_within_10_s(run: Run) -> None:
    """SIGTERM (what systemd and Docker send) stops the worker, projector, simulator and SQS
    bridges, then the stack `ringlog run` brought up, and `ringlog run` itself exits 0:
    nothing of its home is left running 10 s after the signal."""
    run.wait_children_ready()
    children = run.children()
    assert {"worker", "projector", "simulator", "bridge"} <= children.keys(), run.output
    before = processes_of(run.home)
    stack = set(before) - set(children.values()) - {run.proc.pid}
    assert set(children.values()) <= set(before)
    assert len(stack) >= 4, before  # log store, broker, warehouse, SQS (and maybe Redis)

    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    gone = watch_exits(set(before), STOP_S)
    assert run.proc.wait(timeout=1) == 0, run.rest()
    assert not processes_of(run.home), processes_of(run.home)
    assert len(gone) == len(before)
    assert max(gone.values()) - sent < STOP_S
    # in order: every child had ended before the first server of the stack did
    assert max(gone[pid] for pid in children.values()) <= min(gone[pid] for pid in stack)
    assert "stopped: " in run.rest()


def test_sigkill_takes_the_children_and_the_stack_with_it(run: Run) -> None:
    """Killed with SIGKILL, `ringlog run` cannot stop anything: its children and the stack it
    started are tied to it and end by themselves within 10 s."""
    run.wait_children_ready()
    before = processes_of(run.home)
    assert len(before) >= 8, before  # run, 3 children, 4+ servers

    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(timeout=5)
    assert wait_for(lambda: not processes_of(run.home), STOP_S), processes_of(run.home)


def test_a_second_run_on_the_same_home_refuses_and_starts_nothing(run: Run) -> None:
    """A second `ringlog run` on the home says which one runs (pid, API address) in one line,
    exits non-zero and leaves the first one as it was."""
    before = processes_of(run.home)
    second = subprocess.run(
        [sys.executable, "-m", "ringlog", "run"],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "already running" in message, message
    assert f"pid {run.proc.pid}" in message, message
    assert f"http://127.0.0.1:{run.api_port}" in message, message
    assert "ringlog is running" not in second.stdout
    assert processes_of(run.home) == before
    assert httpx.get(f"http://127.0.0.1:{run.api_port}/healthz", timeout=5).status_code == 200


@pytest.fixture
def own_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[devstack.StackState]:
    """An embedded stack of this test's own (its broker gets frozen), topics created."""
    for name in [k for k in os.environ if k.startswith("RINGLOG_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(home))
    state = devstack.up(Settings.load(), home=home)
    try:
        asyncio.run(ensure_topics(Settings.load().kafka, TOPICS))
        yield state
    finally:
        broker = state["kafka"].process
        if broker is not None:
            with contextlib.suppress(psutil.Error):
                psutil.Process(broker.pid).resume()
        devstack.down(home=home)


def test_worker_and_projector_stop_within_10_s_when_the_broker_is_gone(
    own_stack: devstack.StackState, tmp_path: Path
) -> None:
    """With the broker frozen (it accepts connections and never answers: a host that went
    away), the worker used to ignore SIGTERM for 30 s and more; now it exits 0 within 10 s
    of SIGTERM, and so does the projector (unless it has already ended by itself: it exits
    when the broker stays away, for its supervisor to restart it)."""
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "projector")}
    procs = {}
    for name, log in logs.items():
        with log.open("w") as out:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "ringlog", name], stdout=out, stderr=subprocess.STDOUT
            )
    try:

        def logged(name: str, text: str) -> bool:
            return text in logs[name].read_text()

        assert wait_for(lambda: logged("worker", "worker ready"), 60), logs["worker"].read_text()
        assert wait_for(lambda: logged("projector", "projection started"), 60)
        broker = own_stack["kafka"].process
        assert broker is not None
        psutil.Process(broker.pid).suspend()
        # the worker's group session has expired: its consumer now looks for a coordinator on
        # a broker that never answers (aiokafka's line); from here the old worker took 30 s+
        expired = "Heartbeat session expired"
        assert wait_for(lambda: logged("worker", expired), 60), logs["worker"].read_text()

        running = {name: proc for name, proc in procs.items() if proc.poll() is None}
        assert "worker" in running, logs["worker"].read_text()[-3000:]
        sent = time.monotonic()
        for proc in running.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in running.items():
            left = max(0.1, STOP_S - (time.monotonic() - sent))
            assert proc.wait(timeout=left) == 0, logs[name].read_text()[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sigkill_leaves_a_stack_started_by_dev_up_running(tmp_path: Path) -> None:
    """The stack of a separate `ringlog dev up` is not `ringlog run`'s: killed, the run takes
    its children with it and leaves that stack serving."""
    env = isolated_env(tmp_path / "home")
    home = Path(env[HOME_ENV])
    dev = [sys.executable, "-m", "ringlog", "dev"]
    subprocess.run([*dev, "up"], env=env, check=True, capture_output=True, timeout=120)
    stack = set(processes_of(home))
    run = Run(env)
    try:
        run.wait_running()
        named = run.children()
        assert named.keys() == {"worker", "projector", "simulator", "bridge"}, run.output
        children = set(named.values())

        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=5)
        assert wait_for(lambda: not children & set(processes_of(home)), STOP_S)
        assert set(processes_of(home)) == stack
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        subprocess.run([*dev, "down"], env=env, capture_output=True, timeout=60)
        for pid in processes_of(home):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()

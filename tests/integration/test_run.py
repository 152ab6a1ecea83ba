"""`ringlog run` (what `make run` starts): up, topics, serve until Ctrl-C, then stop its stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ringlog.config import HOME_ENV, STACK_FILE
from ringlog.devstack.ports import free_port
from ringlog.devstack.processes import ProcessRecord, is_alive

pytestmark = pytest.mark.integration


def wait_for(condition: object, timeout_s: float) -> bool:
    """Poll ``condition()`` until true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def api_answers(port: int) -> bool:
    """Whether the API on ``port`` answers /healthz with 200."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def simulated_calls_done(port: int) -> int:
    """How many calls the local Retell on ``port`` has played to the end."""
    try:
        calls = httpx.get(f"http://127.0.0.1:{port}/sim/calls", timeout=1).json()["calls"]
    except httpx.HTTPError:
        return 0
    return sum(1 for c in calls if c["status"] == "done")


def pid_exists(pid: int) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return status != "Z"


def test_run_serves_until_interrupted_and_stops_what_it_started(tmp_path: Path) -> None:
    """`ringlog run` creates the topics, serves the API, and Ctrl-C stops its stack cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGLOG_")}
    env[HOME_ENV] = str(tmp_path)
    port = free_port()
    env["RINGLOG_API_PORT"] = str(port)
    sim_port = free_port()
    env["RINGLOG_SIMULATOR_PORT"] = str(sim_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringlog", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "ringlog.calls" in output and "created" in output, output
        stack = json.loads((tmp_path / STACK_FILE).read_text())
        records = [
            ProcessRecord.from_json(p["process"]) for p in stack["parts"].values() if p["process"]
        ]
        assert records and all(is_alive(r) for r in records)
        assert wait_for(lambda: api_answers(port), 20), "API never answered /healthz"
        children = [int(m) for m in re.findall(r"^(?:worker|simulator): pid (\d+)", output, re.M)]
        assert len(children) == 2, output
        key = re.search(r"API key for this run: (\S+)", output)
        assert key, output

        # the platform works as a whole: a call request is placed with the local Retell
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/calls",
            json={"to_number": "+14155550123", "from_number": "+14155559876"},
            headers={"Authorization": f"Bearer {key[1]}"},
        )
        assert answer.status_code == 202, answer.text
        assert wait_for(lambda: simulated_calls_done(sim_port) == 1, 60), "no call was placed"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert wait_for(lambda: not any(is_alive(r) for r in records), 10)
        assert wait_for(lambda: not any(pid_exists(pid) for pid in children), 10)
        assert not (tmp_path / STACK_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

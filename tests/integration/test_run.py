"""`ringlog run` (what `make run` starts): up, topics, serve until Ctrl-C, then stop its stack."""

from __future__ import annotations

import json
import os
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


def test_run_serves_until_interrupted_and_stops_what_it_started(tmp_path: Path) -> None:
    """`ringlog run` creates the topics, serves the API, and Ctrl-C stops its stack cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGLOG_")}
    env[HOME_ENV] = str(tmp_path)
    port = free_port()
    env["RINGLOG_API_PORT"] = str(port)
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

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert wait_for(lambda: not any(is_alive(r) for r in records), 10)
        assert not (tmp_path / STACK_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

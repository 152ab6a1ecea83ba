"""`ringlog run` stopped and started again on the same home: the log is still there, and the
API's views, the CRM, the sessions and the warehouse agree with it. Stopped with SIGTERM the
stores are kept; killed with SIGKILL they are reset and rebuilt from the log.

One home, three runs in a row (each on the ports of the first), so the test pays for the
platform's start three times (about a minute in all).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ringlog_run import Run, isolated_env, simulated_calls_done, wait_for

pytestmark = pytest.mark.integration

CALLEE = "+14155550123"


def api_key(run: Run) -> str:
    found = re.search(r"API key for this run: (\S+)", run.output)
    assert found, run.output
    return found[1]


def snapshot(run: Run, ref: str) -> dict[str, Any]:
    """What each store says about the call (and the callee's session) now."""
    base = f"http://127.0.0.1:{run.api_port}"
    headers = {"Authorization": f"Bearer {api_key(run)}"}
    call = httpx.get(f"{base}/v1/calls/{ref}", headers=headers, timeout=10)
    events = httpx.get(f"{base}/v1/calls/{ref}/events", headers=headers, timeout=10)
    session = httpx.get(f"{base}/v1/sessions/{CALLEE}", headers=headers, timeout=10)
    return {
        "call": (call.status_code, call.json()),
        "events": (events.status_code, events.json()),
        "session": (session.status_code, session.json() if session.status_code == 200 else None),
        "crm": crm_interactions(run.home / "crm.db"),
        "warehouse": warehouse_row(run, ref),
    }


def crm_interactions(path: Path) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return db.execute(
                "SELECT call_ref, outcome, turns, transcript FROM crm_interactions "
                "ORDER BY call_ref"
            ).fetchall()
        except sqlite3.OperationalError:  # the projector has not made its tables yet
            return []


def warehouse_row(run: Run, ref: str) -> list[dict[str, Any]]:
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "ringlog",
            "sql",
            "--json",
            f"SELECT CALL_REF, STATUS, CONNECTED, EVENTS FROM CALLS WHERE CALL_REF = '{ref}'",
        ],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if answer.returncode != 0:
        return [{"error": answer.stderr.strip()[-200:]}]
    rows: list[dict[str, Any]] = json.loads(answer.stdout)
    return rows


def settled(run: Run, ref: str, expected: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Poll until the snapshot equals ``expected`` (or the time is up); return the last one."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = snapshot(run, ref)
        if now == expected or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def differences(now: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """``{store: (now, expected)}`` where they differ; the call state by field."""
    found: dict[str, Any] = {}
    for store, value in expected.items():
        if now.get(store) == value:
            continue
        if store == "call" and now["call"][0] == value[0] == 200:
            found["call"] = {
                k: (now["call"][1].get(k), v)
                for k, v in value[1].items()
                if now["call"][1].get(k) != v
            }
        else:
            found[store] = (now.get(store), value)
    return found


def stable(run: Run, ref: str, timeout_s: float = 30) -> dict[str, Any]:
    """The snapshot once two in a row, a second apart, are equal (late effects landed)."""
    deadline = time.monotonic() + timeout_s
    last = snapshot(run, ref)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = snapshot(run, ref)
        if now == last:
            return now
        last = now
    pytest.fail(f"the stores kept changing: {last}")


def test_stop_and_start_keep_the_log_and_every_store_agrees_with_it(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "home")
    sim_port = int(env["RINGLOG_SIMULATOR_PORT"])

    # 1. a call placed and played to its end, then SIGTERM
    first = Run(env)
    try:
        first.wait_running()
        placed = httpx.post(
            f"http://127.0.0.1:{first.api_port}/v1/calls",
            json={"to_number": CALLEE, "from_number": "+14155559876"},
            headers={"Authorization": f"Bearer {api_key(first)}"},
            timeout=10,
        )
        assert placed.status_code == 202, placed.text
        ref = placed.json()["call_ref"]
        assert wait_for(lambda: simulated_calls_done(sim_port) == 1, 60), first.output

        def finished() -> bool:
            now = snapshot(first, ref)
            return (
                now["call"][0] == 200
                and now["call"][1].get("phase") == "ended"
                and now["call"][1].get("recorded") is True
                and bool(now["warehouse"])
                and now["warehouse"][0].get("STATUS") == "ended"
            )

        assert wait_for(finished, 60), snapshot(first, ref)
        before = stable(first, ref)
        assert before["events"][0] == 200 and len(before["events"][1]) >= 3

        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=15) == 0
    finally:
        first.kill()

    # 2. started again: the same answers everywhere, the call not placed a second time
    second = Run(env)
    try:
        second.wait_running()
        assert "did not stop cleanly" not in second.output
        assert differences(settled(second, ref, before, 60), before) == {}
        assert simulated_calls_done(sim_port) == 0  # the new simulator placed nothing
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(timeout=15)
    finally:
        second.kill()

    # 3. after a SIGKILL the stores are reset and rebuilt from the log to the same answers
    third = Run(env)
    try:
        third.wait_running()
        assert "did not stop cleanly" in third.output, third.output
        assert differences(settled(third, ref, before, 90), before) == {}
        assert simulated_calls_done(sim_port) == 0
    finally:
        third.proc.send_signal(signal.SIGTERM)
        third.proc.wait(timeout=15)
        third.kill()

"""`ringlog dev status` with nothing running: one line naming the next command, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ringlog.config import STACK_FILE
from ringlog.devstack.parts import PARTS


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ringlog ARGS`` in ``home``, with no part of the stack given by the
    environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "ringlog", *args],
        env={**env, "RINGLOG_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_status_with_the_stack_down_is_one_line(tmp_path: Path, args: list[str]) -> None:
    proc = run(tmp_path, "dev", "status", *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: the embedded stack is not running")
    assert str(tmp_path) in line and "`ringlog dev up`" in line
    assert not any(tmp_path.iterdir())  # looking created nothing


def test_status_of_a_stack_that_died_names_the_silent_parts(tmp_path: Path) -> None:
    """A stack file whose servers are gone: the parts that do not answer, and what to run."""
    gone = "http://127.0.0.1:1"
    addresses = {
        "kafka": "127.0.0.1:1",
        "redis": "redis://127.0.0.1:1/0",
        "crm": f"sqlite:///{tmp_path / 'crm.db'}",
    }
    parts = {
        name: {"address": addresses.get(name, gone), "managed": False, "process": None}
        for name in [p.name for p in PARTS]
    }
    (tmp_path / STACK_FILE).write_text(json.dumps({"parts": parts, "settings": {}}))
    proc = run(tmp_path, "dev", "status")
    assert proc.returncode == 1
    assert "kafka" in proc.stdout and "NO" in proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: not answering: ")
    assert {"kafka", "redis", "warehouse", "sqs"} <= set(
        line.removeprefix("error: not answering: ").split(";")[0].split(", ")
    )
    assert "`ringlog dev up`" in line
    assert "Traceback" not in proc.stderr

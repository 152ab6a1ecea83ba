"""`ringlog demo` (what `make demo` runs) passes on the session stack, leaving nothing behind.

Its stories include real calls' situations played by the simulator against the platform (a
caller cut short and asked twice, a socket lost mid-call, a 2-hour web call): about 3 s more.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ringlog.config import HOME_ENV

pytestmark = pytest.mark.integration


def test_the_demo_sees_every_effect_of_every_story(stack_home: Path) -> None:
    env = {**os.environ, HOME_ENV: str(stack_home)}
    done = subprocess.run(
        [sys.executable, "-m", "ringlog", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "every expected effect was seen" in output
    assert "MISSING" not in output
    assert "Welcome back! You were booking a flu shot. We were at selecting a date" in output
    assert output.count("ABT: ") == 3
    for call in ("interrupted call", "reconnected call", "2-hour web call"):
        assert f"seen    {call}: booked to the end" in output, call
    assert "Retell asks for reply #2 to: 'My name is Sam Rivera'" in output
    assert "(the socket is lost here; Retell opens it again for the same call)" in output
    children = [int(pid) for pid in re.findall(r": pid (\d+)", output)]
    assert len(children) == 4, output[:2000]  # worker, projector, simulator, api
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "the demo stops them"

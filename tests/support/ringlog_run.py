"""`ringlog run` as a child process of a test, in a home of its own on free ports.

"The processes of a home" are those whose environment names it as ``RINGLOG_HOME`` (every
process ``ringlog run`` starts inherits it) or whose command line mentions it, found with
psutil.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from ringlog.config import HOME_ENV
from ringlog.devstack.ports import free_port

#: Generous bound for `ringlog run` to start (stack, topics, children, API).
START_S = 90.0


def wait_for(condition: Callable[[], object], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``condition()`` until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return bool(condition())


def processes_of(home: Path) -> dict[int, str]:
    """``{pid: name}`` of the running processes (zombies excluded) that belong to ``home``."""
    found = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            cmdline = " ".join(proc.info["cmdline"] or ())
            if str(home) in cmdline or proc.environ().get(HOME_ENV) == str(home):
                found[proc.pid] = proc.info["name"]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of a run in ``home`` on free ports, without the caller's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGLOG_")}
    env[HOME_ENV] = str(home)
    env["RINGLOG_API_PORT"] = str(free_port())
    env["RINGLOG_SIMULATOR_PORT"] = str(free_port())
    return env


class Run:
    """A `ringlog run` child process with its output read line by line in a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.home = Path(env[HOME_ENV])
        self.api_port = int(env["RINGLOG_API_PORT"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout_s: float) -> str:
        """Return the first line (from now on) matching ``pattern``; fail on exit or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} in {timeout_s} s:\n{self.output}")
            if line is None:
                pytest.fail(f"ringlog run exited before {pattern!r}:\n{self.output}")
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def wait_running(self) -> None:
        """Wait for "ringlog is running"; the API answers at that moment already."""
        self.wait_for_line(r"ringlog is running", START_S)
        answer = httpx.get(f"http://127.0.0.1:{self.api_port}/healthz", timeout=5)
        assert answer.status_code == 200, answer.text

    def wait_children_ready(self) -> None:
        """Wait until the worker and the projector are at work (their stop handlers set), so
        a signal finds them mid-work, not still importing."""

        def logged(name: str, line: str) -> bool:
            log = self.home / "logs" / f"{name}.log"
            return log.exists() and line in log.read_text()

        assert wait_for(lambda: logged("worker", "worker ready"), 60), self.output
        assert wait_for(lambda: logged("projector", "projection started"), 60), self.output

    def rest(self) -> str:
        """Everything printed once the process has ended."""
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def children(self) -> dict[str, int]:
        """The platform's children as printed (``worker: pid 123, log …``)."""
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+): pid (\d+)", self.output, re.M)}

    def kill(self) -> None:
        """Clean-up: kill the run and anything of its home still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in processes_of(self.home):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def simulated_calls_done(port: int) -> int:
    """How many calls the local Retell on ``port`` has played to the end."""
    try:
        calls = httpx.get(f"http://127.0.0.1:{port}/sim/calls", timeout=1).json()["calls"]
    except httpx.HTTPError:
        return 0
    return sum(1 for c in calls if c["status"] == "done")

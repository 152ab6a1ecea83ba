"""Servers for end-to-end tests: ASGI apps in uvicorn threads, the worker as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from ringlog.devstack.ports import free_port, tcp_answers, wait_until


@contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL; stop it afterwards."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn:{port}")
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout_s=20), "server did not start"
        assert tcp_answers("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "server thread did not stop"


class WorkerProcess:
    """``ringlog worker`` in a child process with the given environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker (its output goes to the log file)."""
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "worker"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def pid(self) -> int | None:
        """The running process's id, if started."""
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """What the worker printed so far."""
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

"""The processes ``bench.scale`` starts, one per service as deployed: ``ringlog worker``
(``worker_env``; its "worker ready" lines, ``wait_ready``, ``restart``, ``rss_mb`` and
``folded``, the wait until its store's checkpoint covers the log), ``ringlog api``
(``ApiProcess``) and ``ringlog projector --only timeline`` (``ProjectorProcess``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from ringlog.config import Settings
from ringlog.devstack.ports import free_port
from ringlog.streams.offsets import end_offsets
from ringlog.worker.schema import PROCESSOR
from ringlog.worker.views import WorkerViews
from tests.support.servers import WorkerProcess

API_KEY = "bench-api-key"
RETELL_KEY = "bench-retell-key"


def ready_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's "worker ready" log lines, parsed."""
    found = []
    for line in worker.output().splitlines():
        if '"worker ready"' in line:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def alive(worker: WorkerProcess) -> bool:
    """Whether the worker process runs (a child that exited is a zombie until reaped)."""
    if worker.pid is None:
        return False
    try:
        return bool(psutil.Process(worker.pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def wait_ready(worker: WorkerProcess, before: int, timeout_s: float = 300.0) -> float:
    """Wait for a new "worker ready" line; return the seconds the worker logged with it."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = ready_lines(worker)
        if len(lines) > before:
            return float(lines[-1]["seconds"])
        if not alive(worker):
            raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready in {timeout_s} s:\n{worker.output()[-3000:]}")
        await asyncio.sleep(0.02)


async def restart(worker: WorkerProcess) -> tuple[float, float, float]:
    """SIGTERM the worker, start it again; return its logged ready seconds, the wall seconds
    from spawn to the ready line, and its RSS (MB) once ready."""
    worker.stop()
    before = len(ready_lines(worker))
    spawned = time.perf_counter()
    worker.start()
    logged = await wait_ready(worker, before)
    wall = time.perf_counter() - spawned
    return logged, wall, rss_mb(worker)


def rss_mb(worker: WorkerProcess) -> float:
    """The running worker's RSS (MB)."""
    assert worker.pid is not None
    return float(psutil.Process(worker.pid).memory_info().rss / 2**20)


async def folded(settings: Settings, worker: WorkerProcess, timeout_s: float = 7200.0) -> int:
    """Wait until the worker store's checkpoint covers the ends of its topics; return the
    number of records it folded (the ends' sum)."""
    topics = [settings.topic(t) for t in ("calls", "abt", "tasks")]
    ends = await end_offsets(settings.kafka, topics)
    views = WorkerViews.open(
        settings.crm.url, calls_topic=topics[0], abt_topic=topics[1], tasks_topic=topics[2]
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done = await views.load_checkpoint(PROCESSOR)
            if all(done.get(tp, 0) >= end for tp, end in ends.items()):
                return sum(ends.values())
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker behind after {timeout_s} s: {done} < {ends}")
            if not alive(worker):
                raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
            await asyncio.sleep(0.5)
    finally:
        views.close()


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "RINGLOG_WORKER_APP_ID": f"bench-scale-{uuid.uuid4().hex[:8]}",
        "RINGLOG_RETELL_API_KEY": RETELL_KEY,
        # nothing in the history is due: a dispatch attempt would fail here, loudly
        "RINGLOG_RETELL_BASE_URL": "http://127.0.0.1:9",
        "RINGLOG_CRM_URL": settings.crm.url,
    }


class ProjectorProcess(WorkerProcess):
    """``ringlog projector --only timeline`` (the view ``/events`` may read), for --timeline."""

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "projector", "--only", "timeline"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()


class ApiProcess(WorkerProcess):
    """``ringlog api`` in a process of its own, as deployed: the bench's client (this process)
    never shares a GIL with the server it measures."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(env | {"RINGLOG_API_KEYS": API_KEY}, log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "api", "--port", str(self.port)],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Wait until it answers ``/healthz``; raise if it exits first."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while True:
                if not alive(self):
                    raise RuntimeError(f"ringlog api exited:\n{self.output()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code < 500:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ringlog api not up after {timeout_s} s")
                await asyncio.sleep(0.2)

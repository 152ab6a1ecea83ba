"""Stopping within a deadline on SIGTERM and SIGINT, and one ``ringlog run`` per home.

Supervisors (systemd, Docker, Kubernetes) stop a process with SIGTERM and kill it some seconds
later (Docker after 10 s). Every ringlog process is gone within :data:`STOP_DEADLINE_S` of the
first SIGTERM or SIGINT, whatever it is waiting on, a broker or a store that is gone included:

* the first signal asks the process to stop (:class:`StopRequest`): a long-running command's
  ``stop`` event is set (:func:`run_until_stopped`), ``ringlog run`` unwinds its start-up;
* an asyncio main still running :data:`STOP_GRACE_S` later is cancelled;
* a watchdog thread woken by the first signal ends the process at :data:`STOP_DEADLINE_S`
  (``os._exit``), should anything still hold it: a call blocked in a client, a task that
  swallows its cancellation, an executor thread the interpreter waits for at exit.

Later signals never interrupt a stop under way. A stop that was asked for exits with 0, one
the watchdog had to end with 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from ringlog.devstack.errors import DevstackError

log = structlog.get_logger("ringlog.supervise")

#: A process is gone this long after the first SIGTERM/SIGINT, finished or not.
STOP_DEADLINE_S = 8.0
#: How long an asyncio main may take to return after ``stop`` is set before it is cancelled.
STOP_GRACE_S = 5.0
#: The file under the home that ``ringlog run`` locks while it runs (and describes itself in).
RUN_FILE = "run.lock"
#: The signals that ask a ringlog process to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The first SIGTERM or SIGINT this process received.

    The first :meth:`request` wakes the watchdog and calls the callbacks given to
    :meth:`on_stop`; later ones change nothing. :meth:`request` runs in signal handlers, so it
    takes no lock a handler could find held: it logs nothing itself, and the watchdog thread
    (started beforehand) only waits for an event.
    """

    def __init__(self, name: str, *, deadline_s: float = STOP_DEADLINE_S) -> None:
        self.name = name
        #: the signal that asked for the stop; None while none has
        self.signal: int | None = None
        self._deadline_s = deadline_s
        self._at = 0.0
        self._asked = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._watchdog: threading.Thread | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signal is not None

    def left(self, budget_s: float) -> float:
        """Seconds left of ``budget_s`` counted from the request (all of it before one)."""
        if not self.requested:
            return budget_s
        return max(0.0, budget_s - (time.monotonic() - self._at))

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the stop is asked for (at once when it already was)."""
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def request(self, signum: int) -> bool:
        """Record that ``signum`` asks this process to stop; True for the first request."""
        if self.signal is not None:
            return False
        self.signal, self._at = signum, time.monotonic()
        self._asked.set()
        for callback in self._callbacks:
            callback()
        return True

    def install(self, *, interrupt: bool = False) -> None:
        """Handle SIGTERM and SIGINT with :meth:`request` and start the watchdog; with
        ``interrupt`` the first signal also raises :class:`KeyboardInterrupt` where the main
        thread is, so synchronous work (a start-up) unwinds through its ``finally`` blocks.
        Call from the main thread."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name=f"stop watchdog of {self.name}", daemon=True
            )
            self._watchdog.start()

        def handle(signum: int, _frame: FrameType | None) -> None:
            if self.request(signum) and interrupt:
                raise KeyboardInterrupt

        for signum in STOP_SIGNALS:
            signal.signal(signum, handle)

    def _watch(self) -> None:
        self._asked.wait()
        name = signal.Signals(self.signal or signal.SIGTERM).name
        log.info("stopping", process=self.name, signal=name, deadline_s=self._deadline_s)
        time.sleep(self.left(self._deadline_s))
        log.error("not stopped in time; exiting now", process=self.name, signal=name)
        os._exit(1)


def run_until_stopped(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    *,
    name: str,
    grace_s: float = STOP_GRACE_S,
) -> None:
    """``asyncio.run(main(stop))`` for a long-running command, where SIGTERM and SIGINT set
    ``stop``: ``main`` has ``grace_s`` to return, is then cancelled, and the process is gone
    :data:`STOP_DEADLINE_S` after the signal in any case (see the module)."""
    request = StopRequest(name)
    request.install()  # before asyncio.run, which would otherwise take SIGINT for itself
    asyncio.run(_until_stopped(main, request, grace_s))


async def _until_stopped(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    request: StopRequest,
    grace_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wake() -> None:  # in a signal handler, between two bytecodes: hand over to the loop
        loop.call_soon_threadsafe(stop.set)

    request.on_stop(wake)
    work = asyncio.ensure_future(main(stop))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            await asyncio.wait({work}, timeout=grace_s)
        if not work.done():
            log.warning("still stopping; cancelling", process=request.name, seconds=grace_s)
            work.cancel()
            await asyncio.wait({work})  # the watchdog ends the process if this never returns
    finally:
        stopping.cancel()
    if not request.requested:
        work.result()  # main ended by itself: its error, if any, is the command's
        return
    if work.cancelled():
        log.info("stopped (cancelled)", process=request.name)
    elif (error := work.exception()) is not None:
        # a client that cannot reach its server may fail on the way out: the stop asked for
        # still happened
        log.warning("stopped with an error", process=request.name, error=repr(error))
    else:
        log.info("stopped", process=request.name)


class AlreadyRunning(DevstackError):
    """``ringlog run`` already runs on this home."""


@contextlib.contextmanager
def run_lock(home: Path, *, api: str) -> Iterator[None]:
    """Hold ``<home>/run.lock`` while ``ringlog run`` runs; raise :class:`AlreadyRunning`
    naming the holder (pid, API address, start) when another process holds it.

    The lock is an ``flock``: the kernel releases it when its holder ends in any way, so a
    killed run never blocks the next one. The file is kept (removing it would race).
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / RUN_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(_holder(path, home)) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "api": api, "started": started}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path, home: Path) -> str:
    """One line saying which ``ringlog run`` holds the lock and how to stop it."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        holder = {}
    pid = holder.get("pid", "?")
    return (
        f"ringlog is already running on {home}: pid {pid}, API {holder.get('api', '?')}, "
        f"since {holder.get('started', '?')}; stop it first (Ctrl-C where it runs, or "
        f"`kill {pid}`) or set RINGLOG_HOME to another directory"
    )

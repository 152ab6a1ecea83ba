"""Starting and stopping the stack's server processes, identified beyond their pid.

A process is recorded with its pid *and* its start time (``/proc/<pid>/stat``), so a pid that
the kernel has since given to another program is never signalled.

A child can be *tied* to this process: on Linux it is given a parent-death signal
(``prctl(PR_SET_PDEATHSIG)``), which the kernel sends it when this process ends in any way,
SIGKILL included. The kernel sends it when the *thread* that started the child ends, so tied
children are started from the main thread. ``ringlog run`` ties everything it starts; the
servers of a separate ``ringlog dev up`` are not tied and outlive it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ringlog.devstack.ports import wait_until

#: Children started by this interpreter, kept so they can be reaped (no zombies, no warnings).
_children: dict[int, subprocess.Popen[bytes]] = {}
#: The parent-death signal :func:`spawn` gives its children unless told otherwise (see
#: :func:`tied_to_this_process`); None: children outlive this process.
_tie: signal.Signals | None = None
#: ``prctl`` option: the signal this process receives when its parent ends.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessRecord:
    """A process this stack started: pid, start time (clock ticks since boot), command, log."""

    pid: int
    start_ticks: int
    cmdline: tuple[str, ...]
    log: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        """Rebuild a record written by :meth:`to_json`."""
        return cls(
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            cmdline=tuple(data["cmdline"]),
            log=str(data["log"]),
        )


def start_ticks(pid: int) -> int | None:
    """Return the start time of ``pid`` from ``/proc``, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may contain spaces; fields after the last ')' are fixed
    fields = stat.rsplit(")", 1)[1].split()
    state = fields[0]
    if state == "Z":  # a zombie has exited; only its exit status remains
        return None
    return int(fields[19])


@contextlib.contextmanager
def tied_to_this_process(death_signal: signal.Signals = signal.SIGKILL) -> Iterator[None]:
    """Within this block, :func:`spawn` ties its children to this process: they receive
    ``death_signal`` when it ends (``ringlog run`` starts the embedded stack this way).

    SIGKILL by default: how long a third-party server takes to stop on SIGTERM is not ours
    to bound, and once this process is gone nobody is left to follow up with SIGKILL."""
    global _tie
    before, _tie = _tie, death_signal
    try:
        yield
    finally:
        _tie = before


def spawn(
    cmd: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    *,
    death_signal: signal.Signals | None = None,
) -> ProcessRecord:
    """Start ``cmd`` in its own session with output to ``log``; return its record.

    With a ``death_signal`` (or inside :func:`tied_to_this_process`) the child receives that
    signal when this process ends; call it from the main thread then (see the module).
    """
    if death_signal is None:
        death_signal = _tie
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_parent_death(death_signal) if death_signal is not None else None,
        )
    _children[proc.pid] = proc
    ticks = start_ticks(proc.pid)
    return ProcessRecord(proc.pid, ticks or 0, tuple(cmd), str(log))


def _parent_death(death_signal: signal.Signals) -> Callable[[], None] | None:
    """The ``preexec_fn`` that asks the kernel for ``death_signal`` when this process ends;
    None off Linux (no such request: children are stopped by the normal stop only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def tie() -> None:  # runs in the child between fork and exec: system calls only
        prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before the request was made
            os.kill(os.getpid(), death_signal)

    return tie


def is_alive(record: ProcessRecord) -> bool:
    """Return whether the recorded process still runs (same pid, same start time)."""
    return start_ticks(record.pid) == record.start_ticks


def stop(record: ProcessRecord, timeout_s: float = 5.0) -> bool:
    """Stop the recorded process group: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns True when the process was running and is now gone; False when it was not ours
    (any more) or not running.
    """
    if not is_alive(record):
        return False
    _signal_group(record.pid, signal.SIGTERM)
    if not wait_until(lambda: not is_alive(record), timeout_s=timeout_s):
        _signal_group(record.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(record), timeout_s=timeout_s)
    _reap(record.pid)
    return True


def terminate(record: ProcessRecord) -> None:
    """Send SIGTERM to the recorded process group (when it still runs) without waiting."""
    if is_alive(record):
        _signal_group(record.pid, signal.SIGTERM)


def stop_all(records: Iterable[ProcessRecord], timeout_s: float = 5.0) -> list[ProcessRecord]:
    """Stop the recorded process groups together: SIGTERM to all at once, then SIGKILL to
    those still running after ``timeout_s``; return the records that had to be killed."""
    records = list(records)
    running = [r for r in records if is_alive(r)]
    for record in running:
        _signal_group(record.pid, signal.SIGTERM)
    wait_until(lambda: not any(is_alive(r) for r in running), timeout_s=timeout_s)
    killed = [r for r in running if is_alive(r)]
    for record in killed:
        _signal_group(record.pid, signal.SIGKILL)
    wait_until(lambda: not any(is_alive(r) for r in killed), timeout_s=1.0)
    for record in records:
        _reap(record.pid)
    return killed


def log_tail(path: str, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _reap(pid: int) -> None:
    # when the process is our own child (started in this interpreter), collect its status
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)

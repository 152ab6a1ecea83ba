"""Starting and stopping the stack's server processes, identified beyond their pid.

A process is recorded with its pid *and* its start time (``/proc/<pid>/stat``), so a pid that
the kernel has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ringlog.devstack.ports import wait_until

#: Children started by this interpreter, kept so they can be reaped (no zombies, no warnings).
_children: dict[int, subprocess.Popen[bytes]] = {}


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


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    """Start ``cmd`` in its own session with output to ``log``; return its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _children[proc.pid] = proc
    ticks = start_ticks(proc.pid)
    return ProcessRecord(proc.pid, ticks or 0, tuple(cmd), str(log))


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

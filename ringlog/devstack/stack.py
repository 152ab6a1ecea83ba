"""``up``, ``status`` and ``down`` of the embedded stack.

``up`` starts every part the environment does not give, on free ports, waits until each
answers, and writes ``<home>/stack.json``::

    {"parts": {"kafka": {"address": "127.0.0.1:41234", "managed": true,
                         "process": {"pid": 1234, "start_ticks": …, "cmdline": […], "log": …}},
               "redis": {"address": "redis://127.0.0.1:6379/0", "managed": false,
                         "process": null},
               …},
     "settings": {"kafka": {"bootstrap": "127.0.0.1:41234"}, "redis": {"url": …}, …}}

``settings`` is what :func:`ringlog.config.read_stack_file` hands to every later
``Settings.load()``. ``down`` stops exactly the processes recorded there, nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ringlog.config import STACK_FILE, Settings, parts_given_by_environment
from ringlog.devstack import processes
from ringlog.devstack.archive import LogArchive
from ringlog.devstack.errors import DevstackError
from ringlog.devstack.parts import PARTS, configured_address, probe, redis_settings
from ringlog.devstack.ports import free_port, wait_until
from ringlog.devstack.processes import ProcessRecord


@dataclass(frozen=True)
class PartState:
    """One part as recorded by ``up``."""

    name: str
    address: str
    managed: bool
    process: ProcessRecord | None
    #: the settings section this part gives later commands; empty when configured elsewhere
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PartStatus:
    """One part as ``status`` sees it now."""

    name: str
    address: str
    answers: bool
    managed: bool
    pid: int | None


StackState = dict[str, PartState]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def up(
    settings: Settings,
    *,
    home: Path,
    timeout_s: float = 30.0,
    say: Callable[[str], None] = _to_stderr,
) -> StackState:
    """Start the stack (or return the running one); raise :class:`DevstackError` on failure.

    Parts given by the environment are used as configured. Redis is used where the configured
    URL answers (under a key prefix of this home's own); otherwise a private ``redis-server`` is
    started. The log keeper writes the archived log (``home/log``) back into the new broker
    before ``up`` returns. When the archive may be behind the stores derived from the log (the
    keeper did not stop cleanly), those stores are reset first and ``say`` is told why: they
    are then rebuilt from the log. On any failure everything this call started is stopped
    again before the error is raised.
    """
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        current = _load(home)
        if current is not None and _all_alive(current):
            return current
        if current is not None:  # a stack died half-way: clear what is left of it
            _stop_all(current)
            (home / STACK_FILE).unlink(missing_ok=True)
        stale = _derived_stores_may_be_ahead(home, parts_given_by_environment())
        if stale:
            _reset_derived_files(home, say)
        state = _start(settings, home, timeout_s)
        if stale:
            _reset_redis_keys(state, say)
        _save(home, state)
        return state


def is_running(*, home: Path) -> bool:
    """Return whether a stack recorded under ``home`` is up with every process alive."""
    current = _load(home)
    return current is not None and _all_alive(current)


def status(settings: Settings, *, home: Path) -> list[PartStatus]:
    """Probe every part now: the recorded stack's, or the configured addresses if none runs."""
    current = _load(home) or {}
    given = parts_given_by_environment()
    result = []
    for part in PARTS:
        recorded = current.get(part.name)
        if recorded is None and part.serves in given:
            continue  # e.g. no log keeper beside a broker given elsewhere
        address = recorded.address if recorded else configured_address(part.name, settings)
        process = recorded.process if recorded else None
        result.append(
            PartStatus(
                name=part.name,
                address=address,
                answers=probe(part.name, address),
                managed=bool(recorded and recorded.managed),
                pid=process.pid if process else None,
            )
        )
    return result


def status_json(parts: list[PartStatus]) -> dict[str, dict[str, Any]]:
    """``{"kafka": {"address", "answers", "managed", "pid"}, …}`` for ``dev status --json``."""
    return {
        p.name: {"address": p.address, "answers": p.answers, "managed": p.managed, "pid": p.pid}
        for p in parts
    }


def down(*, home: Path) -> list[str]:
    """Stop the processes ``up`` recorded under ``home``; return the names of parts stopped."""
    with _locked(home):
        current = _load(home)
        if current is None:
            return []
        stopped = _stop_all(current)
        (home / STACK_FILE).unlink(missing_ok=True)
        return stopped


def _derived_stores_may_be_ahead(home: Path, given: set[str]) -> bool:
    """Whether the stores derived from the log may hold more than the archived log: the
    embedded broker is used, this home ran before (it has a CRM file or an archive), and the
    log keeper did not mark the archive complete when it last stopped."""
    if "kafka" in given:
        return False
    archive = LogArchive(home / "log")
    ran_before = (home / "crm.db").exists() or (home / "log").exists()
    return ran_before and not archive.clean


def _reset_derived_files(home: Path, say: Callable[[str], None]) -> None:
    """Delete the embedded CRM/views database and warehouse (files, no process holds them
    yet); name the stores given elsewhere, which are left alone."""
    given = parts_given_by_environment()
    reset = []
    if "crm" not in given:
        for suffix in ("", "-wal", "-shm", "-journal"):
            (home / f"crm.db{suffix}").unlink(missing_ok=True)
        reset.append("the CRM and views database")
    if "warehouse" not in given:
        shutil.rmtree(home / "warehouse", ignore_errors=True)
        reset.append("the warehouse")
    left = sorted(given & {"crm", "warehouse", "redis"})
    say(
        "ringlog: the log keeper did not stop cleanly last time, so the archived log may end "
        f"before what the stores hold. Reset from the log: {', '.join(reset) or 'nothing'}"
        " and this home's Redis keys; they are rebuilt as the processes read the log again."
        + (f" Given elsewhere and NOT reset: {', '.join(left)}." if left else "")
    )


def _reset_redis_keys(state: StackState, say: Callable[[str], None]) -> None:
    """Delete this home's keys (its prefix) from the Redis the stack uses."""
    entry = state.get("redis")
    if entry is None or "redis" in parts_given_by_environment():
        return
    prefix = str(entry.settings.get("key_prefix", ""))
    if not prefix:
        return
    client = redis.Redis.from_url(entry.address)
    try:
        deleted = 0
        for key in client.scan_iter(match=f"{prefix}*", count=1_000):
            deleted += int(client.delete(key))
    finally:
        client.close()
    if deleted:
        say(f"ringlog: deleted {deleted} Redis key(s) under {prefix}")


def _start(settings: Settings, home: Path, timeout_s: float) -> StackState:
    """Start the parts in order. A part that serves another (the log keeper serves the
    broker) starts once that part answers, and not at all when it is given elsewhere; every
    part answers before this returns."""
    given = parts_given_by_environment()
    state: StackState = {}
    pending: list[PartState] = []
    try:
        for part in PARTS:
            if part.serves is not None:
                if part.serves in given:
                    continue  # e.g. no log keeper for a broker given elsewhere
                served = state[part.serves]
                if served in pending:
                    _wait_for(served, timeout_s)
                    pending.remove(served)
            if part.name in given or (part.name == "redis" and probe("redis", settings.redis.url)):
                address = configured_address(part.name, settings)
                shared = part.name == "redis" and "redis" not in given
                section = redis_settings(home, address) if shared else {}
                state[part.name] = PartState(part.name, address, False, None, section)
                continue
            port = free_port()
            record = None
            if part.command is not None:
                log = home / "logs" / f"{part.name}.log"
                started = {name: entry.address for name, entry in state.items()}
                record = processes.spawn(part.command(home, port, started), log)
            entry = PartState(
                part.name,
                part.address(home, port),
                managed=record is not None,
                process=record,
                settings=part.settings(home, port),
            )
            state[part.name] = entry
            pending.append(entry)
        for entry in pending:
            _wait_for(entry, timeout_s)
    except BaseException:
        _stop_all(state)
        raise
    return state


def _wait_for(entry: PartState, timeout_s: float) -> None:
    record = entry.process
    answered = wait_until(
        lambda: probe(entry.name, entry.address),
        timeout_s=timeout_s,
        give_up=lambda: record is not None and not processes.is_alive(record),
    )
    if answered:
        return
    if record is None:
        raise DevstackError(f"{entry.name}: nothing answers at {entry.address}")
    exited = not processes.is_alive(record)
    reason = "exited during start-up" if exited else f"did not answer within {timeout_s:.0f} s"
    raise DevstackError(
        f"{entry.name} {reason} at {entry.address}\n"
        f"  command: {' '.join(record.cmdline)}\n"
        f"  log ({record.log}):\n{processes.log_tail(record.log)}"
    )


def _stop_all(state: StackState) -> list[str]:
    """Stop the recorded processes, the last started first (the broker before its store)."""
    stopped = []
    for entry in reversed(state.values()):
        if entry.managed and entry.process is not None and processes.stop(entry.process):
            stopped.append(entry.name)
    return stopped


def _all_alive(state: StackState) -> bool:
    return all(
        e.process is not None and processes.is_alive(e.process)
        for e in state.values()
        if e.managed and e.process is not None
    )


def _save(home: Path, state: StackState) -> None:
    data = {
        "parts": {
            name: {
                "address": e.address,
                "managed": e.managed,
                "process": e.process.to_json() if e.process else None,
                "settings": e.settings,
            }
            for name, e in state.items()
        },
        "settings": {name: e.settings for name, e in state.items() if e.settings},
    }
    tmp = home / f".{STACK_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, home / STACK_FILE)


def _load(home: Path) -> StackState | None:
    try:
        data = json.loads((home / STACK_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return {
        name: PartState(
            name,
            part["address"],
            bool(part["managed"]),
            ProcessRecord.from_json(part["process"]) if part.get("process") else None,
            part.get("settings") or {},
        )
        for name, part in data.get("parts", {}).items()
    }


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

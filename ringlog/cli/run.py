"""``ringlog run`` and ``ringlog demo``: the platform on the embedded stack.

``ringlog run`` is one per home (:func:`~ringlog.devstack.supervise.run_lock`). It starts the
embedded stack (unless one runs already), then the platform's children (worker, projector,
simulator), then serves the API in-process. On SIGTERM or SIGINT it stops them the other way
round, within :data:`STOP_DEADLINE_S`: the children get SIGTERM at once and stop while the API
drains its requests (those still running :data:`CHILDREN_STOP_S` after the signal are
killed), then the stack it started is stopped. Everything it starts is tied to it
(:mod:`ringlog.devstack.processes`): killed with SIGKILL, it takes its children and the stack
it started with it; a stack started by ``ringlog dev up`` is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from pydantic import SecretStr

from ringlog import devstack, logs
from ringlog.cli.output import console
from ringlog.config import Settings, require_phone_hash_key
from ringlog.devstack import processes
from ringlog.devstack.errors import DevstackError
from ringlog.devstack.ports import free_port, tcp_answers
from ringlog.devstack.processes import ProcessRecord, spawn, stop_all, terminate
from ringlog.devstack.supervise import StopRequest, run_lock

#: ``ringlog run`` is gone this long after the first SIGTERM/SIGINT, finished or not (its
#: children and the stack it started end with it).
STOP_DEADLINE_S = 9.5
#: How long after the signal the platform's children may take before they are killed.
CHILDREN_STOP_S = 6.5
#: How long the API waits for requests in flight when it stops.
API_DRAIN_S = 2


def with_local_retell(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Settings (and the children's environment) for the platform's own processes.

    Without a Retell key the simulator stands in for Retell: a fresh key is shared by the API
    (webhook signatures), the worker (create-call) and the simulator, which plays each call's
    patient through the API's custom-LLM socket. Without API keys a fresh
    one is made and printed, so the API can be tried at once.
    """
    env: dict[str, str] = {}
    retell = settings.retell
    api = settings.api
    simulator = settings.simulator
    if not api.keys:
        key = f"dev_{secrets.token_hex(12)}"
        api = api.model_copy(update={"keys": (key,)})
        env["RINGLOG_API_KEYS"] = key
    if retell.api_key is None:
        port = simulator.port
        if tcp_answers(simulator.host, port):
            port = free_port(simulator.host)
        key = f"sim_{secrets.token_hex(16)}"
        base_url = f"http://{simulator.host}:{port}"
        webhook_url = f"http://{api.host}:{api.port}/v1/webhooks/retell"
        llm_url = f"ws://{api.host}:{api.port}/v1/llm"
        retell = retell.model_copy(update={"api_key": SecretStr(key), "base_url": base_url})
        simulator = simulator.model_copy(
            update={"port": port, "webhook_url": webhook_url, "llm_websocket_url": llm_url}
        )
        env |= {
            "RINGLOG_RETELL_API_KEY": key,
            "RINGLOG_RETELL_BASE_URL": base_url,
            "RINGLOG_SIMULATOR_PORT": str(port),
            "RINGLOG_SIMULATOR_WEBHOOK_URL": webhook_url,
            "RINGLOG_SIMULATOR_LLM_WEBSOCKET_URL": llm_url,
        }
    changed = {"retell": retell, "api": api, "simulator": simulator}
    return settings.model_copy(update=changed), env


@contextlib.contextmanager
def platform_processes(
    settings: Settings,
    env: dict[str, str],
    *,
    api: bool = False,
    bridge: bool = False,
    stop: StopRequest | None = None,
) -> Iterator[list[str]]:
    """Run the worker, the projector, the simulator (when it stands in for Retell) and, if
    asked, the SQS bridges (``ringlog bridge``) and the API as child processes, tied to this
    one (they get SIGTERM when it ends, even killed); stop them together on exit, and at once
    when ``stop`` is asked for."""
    commands = {"worker": ["worker"], "projector": ["projector"]}
    if "RINGLOG_RETELL_API_KEY" in env:
        commands["simulator"] = ["simulator"]
    if bridge:
        commands["bridge"] = ["bridge"]
    if api:
        commands["api"] = ["api"]
    records: list[ProcessRecord] = []
    lines: list[str] = []

    def terminate_all() -> None:
        for record in records:
            terminate(record)

    if stop is not None:
        stop.on_stop(terminate_all)
    try:
        for name, args in commands.items():
            log = settings.home / "logs" / f"{name}.log"
            record = spawn(
                [sys.executable, "-m", "ringlog", *args],
                log,
                env={**os.environ, **env},
                death_signal=signal.SIGTERM,
            )
            records.append(record)
            lines.append(f"{name}: pid {record.pid}, log {log}")
        yield lines
    finally:
        budget = stop.left(CHILDREN_STOP_S) if stop is not None else CHILDREN_STOP_S
        stop_all(records, timeout_s=budget)


class ApiServer(uvicorn.Server):
    """uvicorn serving the API in ``ringlog run``: ``started`` is called once the port
    answers; a stop signal is also handed to ``stop`` (which stops the children at once)."""

    def __init__(
        self, config: uvicorn.Config, *, stop: StopRequest, started: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._stop = stop
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then say so: the port is bound and listening now."""
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Record the stop, then stop serving as uvicorn does (draining for
        :data:`API_DRAIN_S` at most)."""
        self._stop.request(sig)
        super().handle_exit(sig, frame)


def run() -> None:
    """Start the stack (unless it already runs), ensure topics, start the platform's
    processes and serve the API until SIGINT/SIGTERM; refuse when ``ringlog run`` already
    runs on this home or the API's port is taken."""
    settings = Settings.load()
    api = f"http://{settings.api.host}:{settings.api.port}"
    with run_lock(settings.home, api=api):
        if tcp_answers(settings.api.host, settings.api.port):
            raise DevstackError(
                f"the API's address {settings.api.host}:{settings.api.port} is taken by another "
                "program; stop it or set RINGLOG_API_PORT to a free port"
            )
        stop = StopRequest("ringlog run", deadline_s=STOP_DEADLINE_S)
        # from here on the first SIGTERM/SIGINT unwinds whatever runs, like Ctrl-C
        stop.install(interrupt=True)
        try:
            _run(settings, stop)
        except KeyboardInterrupt:
            if not stop.requested:
                raise
        # a stop that was asked for is a normal exit


def _run(settings: Settings, stop: StopRequest) -> None:
    # imported here, so a refused second run answers at once
    from ringlog.api.app import create_app, server_options
    from ringlog.cli.dev import show_status
    from ringlog.cli.topics import ensure_declared

    home = settings.home
    was_running = devstack.is_running(home=home)
    try:
        with processes.tied_to_this_process():  # the stack started here ends with this process
            devstack.up(settings, home=home)
        settings = Settings.load()  # now with the stack's addresses
        require_phone_hash_key(settings)
        show_status(settings)
        ensure_declared(settings)
        logs.configure()
        settings, env = with_local_retell(settings)
        queues = _bridged_queues(settings)
        with platform_processes(settings, env, bridge=bool(queues), stop=stop) as lines:
            for line in lines:
                console.print(line)
            if queues:
                console.print(f"SQS bridges: {'; '.join(queues)}")
            if "RINGLOG_RETELL_API_KEY" in env:
                console.print(f"Retell: the local simulator at {settings.retell.base_url}")
            if "RINGLOG_API_KEYS" in env:
                console.print(f"API key for this run: {env['RINGLOG_API_KEYS']}")
            address = f"http://{settings.api.host}:{settings.api.port}"

            def started() -> None:
                console.print(
                    f"API on {address} (docs at /docs)\n"
                    "ringlog is running; press Ctrl-C (or send SIGTERM) to stop."
                )

            config = uvicorn.Config(
                create_app(settings),
                **server_options(settings),
                timeout_graceful_shutdown=API_DRAIN_S,
            )
            if not stop.requested:
                # uvicorn takes SIGINT/SIGTERM while it serves and raises the signal again
                # once it has stopped; the handler installed by `run` then finds the stop
                # already recorded and lets the children and the stack be stopped
                ApiServer(config, stop=stop, started=started).run()
    finally:
        if not was_running:
            stopped = devstack.down(home=home)
            console.print(f"stopped: {', '.join(stopped) or 'nothing'}")


def _bridged_queues(settings: Settings) -> list[str]:
    """The SQS bridges ``ringlog bridge`` will run, one line each (none: it is not started).

    On the embedded stack their queues are created first in its moto server, which keeps
    nothing across restarts; SQS given by the environment must have them already (the
    bridge's log says which one is missing)."""
    from ringlog.bridges.service import (
        configured_bridges,
        create_embedded_queues,
        on_embedded_sqs,
    )

    bridges = configured_bridges(settings)
    if bridges and on_embedded_sqs(settings):
        asyncio.run(create_embedded_queues(settings))
    return [bridge.describe() for bridge in bridges]


def demo() -> None:
    """Play the end-to-end stories (a dropped booking recovered, an outbound call, real
    calls' situations); exit 0 only if every effect is seen."""
    from ringlog.demo.main import run_demo

    raise SystemExit(run_demo())

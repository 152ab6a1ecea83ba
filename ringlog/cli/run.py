"""``ringlog run`` and ``ringlog demo``: the platform on the embedded stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator

import uvicorn
from pydantic import SecretStr

from ringlog import devstack, logs
from ringlog.api.app import create_app, server_options
from ringlog.cli.dev import show_status
from ringlog.cli.output import console, print_table
from ringlog.config import Settings, require_phone_hash_key
from ringlog.devstack.ports import free_port, tcp_answers
from ringlog.devstack.processes import ProcessRecord, spawn, stop
from ringlog.streams.admin import ensure_topics
from ringlog.streams.topics import TOPICS


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
    settings: Settings, env: dict[str, str], *, api: bool = False
) -> Iterator[list[str]]:
    """Run the worker, the projector, the simulator (when it stands in for Retell) and, if
    asked, the API as child processes; stop them on exit."""
    commands = {"worker": ["worker"], "projector": ["projector"]}
    if "RINGLOG_RETELL_API_KEY" in env:
        commands["simulator"] = ["simulator"]
    if api:
        commands["api"] = ["api"]
    records: list[ProcessRecord] = []
    lines: list[str] = []
    try:
        for name, args in commands.items():
            log = settings.home / "logs" / f"{name}.log"
            record = spawn([sys.executable, "-m", "ringlog", *args], log, env={**os.environ, **env})
            records.append(record)
            lines.append(f"{name}: pid {record.pid}, log {log}")
        yield lines
    finally:
        for record in records:
            stop(record)


def run() -> None:
    """Start the stack (unless it already runs), ensure topics, serve the API until Ctrl-C."""
    settings = Settings.load()
    was_running = devstack.is_running(home=settings.home)
    devstack.up(settings, home=settings.home)
    try:
        settings = Settings.load()  # now with the stack's addresses
        require_phone_hash_key(settings)
        results = asyncio.run(ensure_topics(settings.kafka, TOPICS))
        show_status(settings)
        print_table(
            "topics",
            ["topic", "partitions", "status"],
            [(r.physical, r.partitions_actual, r.status) for r in results],
        )
        logs.configure()
        settings, env = with_local_retell(settings)
        with platform_processes(settings, env) as processes:
            server = uvicorn.Server(
                uvicorn.Config(create_app(settings), **server_options(settings))
            )
            for line in processes:
                console.print(line)
            if "RINGLOG_RETELL_API_KEY" in env:
                console.print(f"Retell: the local simulator at {settings.retell.base_url}")
            if "RINGLOG_API_KEYS" in env:
                console.print(f"API key for this run: {env['RINGLOG_API_KEYS']}")
            console.print(
                f"API on http://{settings.api.host}:{settings.api.port} (docs at /docs)\n"
                "ringlog is running; press Ctrl-C to stop."
            )
            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; a
            # stop that was asked for is a normal exit
            with contextlib.suppress(KeyboardInterrupt):
                server.run()
    finally:
        if not was_running:
            stopped = devstack.down(home=settings.home)
            console.print(f"stopped: {', '.join(stopped) or 'nothing'}")


def demo() -> None:
    """Play the end-to-end stories (a dropped booking recovered, an outbound call, real
    calls' situations); exit 0 only if every effect is seen."""
    from ringlog.demo.main import run_demo

    raise SystemExit(run_demo())

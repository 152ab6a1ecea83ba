"""``ringlog demo``: start the platform on the embedded stack, play the stories, report.

Everything runs isolated from a ``make run`` that may be up: the demo's topics, Redis keys,
worker group and ports are its own, and it stops what it started. The platform runs as child
processes (API, worker, projector, simulator) exactly as ``make run`` starts them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import httpx

from ringlog import devstack
from ringlog.cli.output import console
from ringlog.cli.run import platform_processes
from ringlog.config import Settings
from ringlog.demo.checks import Story, wait_for
from ringlog.demo.real_calls import real_calls
from ringlog.demo.stories import World, outbound, recovery
from ringlog.devstack.ports import free_port
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS

#: how long the platform may take to answer before the stories start
READY_TIMEOUT_S = 60.0


def demo_environment(token: str) -> dict[str, str]:
    """The demo's own names, ports and keys, for it and its child processes."""
    api_port, sim_port = free_port(), free_port()
    api = f"127.0.0.1:{api_port}"
    return {
        "RINGLOG_KAFKA_TOPIC_PREFIX": f"demo{token}.",
        "RINGLOG_REDIS_KEY_PREFIX": f"demo{token}:",
        "RINGLOG_WORKER_APP_ID": f"ringlog-demo-{token}",
        "RINGLOG_API_PORT": str(api_port),
        "RINGLOG_API_KEYS": f"demo_{token}",
        "RINGLOG_RETELL_API_KEY": f"sim_{secrets.token_hex(16)}",
        "RINGLOG_RETELL_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "RINGLOG_SIMULATOR_PORT": str(sim_port),
        "RINGLOG_SIMULATOR_WEBHOOK_URL": f"http://{api}/v1/webhooks/retell",
        "RINGLOG_SIMULATOR_LLM_WEBSOCKET_URL": f"ws://{api}/v1/llm",
        "RINGLOG_SIMULATOR_RING_S": "0.2",
        "RINGLOG_SIMULATOR_ANALYSIS_S": "0.3",
    }


def run_demo() -> int:
    """Run the stories; print transcripts and what landed where; 0 only if all was seen."""
    started = time.monotonic()
    home = Settings.load().home
    was_running = devstack.is_running(home=home)
    devstack.up(Settings.load(), home=home)
    token = secrets.token_hex(4)
    env = demo_environment(token)
    os.environ.update(env)
    settings = Settings.load()
    try:
        asyncio.run(ensure_topics(settings.kafka, TOPICS))
        with platform_processes(settings, env, api=True) as processes:
            for line in processes:
                console.print(f"[dim]{line}[/dim]", soft_wrap=True)
            stories = asyncio.run(_play(settings, env))
    finally:
        asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))
        if not was_running:
            devstack.down(home=home)
    return _report(stories, time.monotonic() - started)


async def _play(settings: Settings, env: dict[str, str]) -> list[Story]:
    api_url = f"http://127.0.0.1:{env['RINGLOG_API_PORT']}"
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=10) as api,
        httpx.AsyncClient(base_url=env["RINGLOG_RETELL_BASE_URL"], timeout=10) as sim,
    ):
        await _ready(api, "/readyz")
        await _ready(sim, "/sim/calls")
        world = World(settings, api, sim, env["RINGLOG_API_KEYS"])
        return [await recovery(world), await outbound(world), await real_calls(world)]


async def _ready(client: httpx.AsyncClient, path: str) -> None:
    async def status() -> int:
        try:
            return (await client.get(path)).status_code
        except httpx.HTTPError:
            return 0

    ok, code = await wait_for(status, lambda c: c == 200, timeout_s=READY_TIMEOUT_S)
    if not ok:
        raise RuntimeError(f"{client.base_url}{path} did not become ready (last status {code})")


def _report(stories: list[Story], seconds: float) -> int:
    for story in stories:
        console.rule(story.name)
        for line in story.lines:
            console.print(line, highlight=False, soft_wrap=True)
        console.print("what landed where:")
        for check in story.checks:
            mark = "[green]seen[/green]   " if check.ok else "[red]MISSING[/red]"
            detail = f" [dim]({check.detail[:90]})[/dim]" if check.detail else ""
            console.print(f"  {mark} {check.what} — {check.where}{detail}", soft_wrap=True)
    failed = [c for s in stories for c in s.checks if not c.ok]
    verdict = "every expected effect was seen" if not failed else f"{len(failed)} missing"
    console.print(f"demo finished in {seconds:.1f} s: {verdict}")
    return 1 if failed else 0

"""The operator console end to end: a real API, worker, views and simulator, and a real browser.

One platform for the module, on topics of its own: the API and the simulator (Retell, with
the dialog over the API's custom-LLM socket) served by uvicorn on loopback ports, the worker
(:func:`ringlog.worker.app.run_worker`: it places calls through the simulator and emits the
ABT events) and the read views kept in this process, all on the test PostgreSQL. One headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; ``make browser`` installs it)
for the module. Screenshots of every page go to ``tests/artifacts/console/``.

Without chromium the browser tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringlog.api.app import create_app
from ringlog.config import CrmSettings, RetellSettings, Settings, SimulatorSettings
from ringlog.console import auth
from ringlog.devstack.ports import free_port
from ringlog.simulator import create_simulator
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS
from ringlog.worker.app import run_worker
from tests.integration.test_api_ingest import API_KEY, AUTH, RETELL_KEY, api_settings
from tests.support.postgres import POSTGRES_URL
from tests.support.servers import serving
from tests.support.worker_runtime import keeping_views

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: How long the browser waits for a condition (a call's whole life through the simulator).
WAIT_MS = 30_000
PATIENT = "+14155550177"
CLINIC = "+14155559876"
PAGES = ("/console", "/console/calls", "/console/calls/call_x", "/console/sessions")
PAGES += ("/console/sessions/call_x", "/console/health")
STREAMS = ("/console/calls/stream", "/console/calls/call_x/stream")


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here (``None``: they can, or must: in CI)."""
    if Path(CHROMIUM).exists() or os.environ.get("CI"):
        return None
    return f"{CHROMIUM} is not installed (`make browser` installs it); browser tests skipped"


@dataclass(frozen=True)
class Platform:
    """The running platform of the module."""

    settings: Settings
    url: str
    sim_url: str


@pytest.fixture(scope="module")
async def platform(stack_home: Path) -> AsyncIterator[Platform]:
    """API, simulator, worker and views on topics of the module's own (see the module)."""
    base = Settings.load()
    kafka = base.kafka.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."})
    api_port, sim_port = free_port(), free_port()
    api_url, sim_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}"
    settings = api_settings(base.model_copy(update={"kafka": kafka})).model_copy(
        update={
            "crm": CrmSettings(url=POSTGRES_URL),
            "retell": RetellSettings(api_key=RETELL_KEY, base_url=sim_url),
            "worker": base.worker.model_copy(
                update={
                    "app_id": f"console-worker-{uuid.uuid4().hex[:8]}",
                    "dispatch_backoff_s": 0.05,
                    "dispatch_poll_s": 0.2,
                }
            ),
            "simulator": SimulatorSettings(
                webhook_url=f"{api_url}/v1/webhooks/retell",
                llm_websocket_url=f"ws://127.0.0.1:{api_port}/v1/llm",
                ring_s=0.05,
                talk_s=0.2,
                analysis_s=0.1,
            ),
        }
    )
    await ensure_topics(settings.kafka, TOPICS)
    stop = asyncio.Event()
    try:
        with (
            serving(create_app(settings), api_port),
            serving(create_simulator(settings), sim_port),
        ):
            worker = asyncio.create_task(run_worker(settings, stop))
            try:
                async with keeping_views(settings):
                    yield Platform(settings, api_url, sim_url)
            finally:
                stop.set()
                await worker
    finally:
        await delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS])


@pytest.fixture(scope="module")
async def browser(platform: Platform) -> AsyncIterator[Any]:
    """One headless Chromium for the module (closed before the platform stops: its open
    streams would hold the API's server)."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="module")
async def signed_in(browser: Any, platform: Platform) -> AsyncIterator[Any]:
    """A desktop browser context (1280 px) signed in with the API key through the form."""
    context = await browser.new_context(viewport=DESKTOP, base_url=platform.url)
    page = await context.new_page()
    await page.goto("/console/health")
    assert "/console/sign-in?next=" in page.url
    await page.fill("#key", API_KEY)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url.endswith("/console/health"), "signing in goes on to the page asked for"
    await page.close()
    try:
        yield context
    finally:
        await context.close()


async def shoot(page: Any, name: str) -> None:
    """A full-page screenshot under :data:`ARTIFACTS`."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@contextlib.asynccontextmanager
async def phone(browser: Any, platform: Platform, desktop: Any) -> AsyncIterator[Any]:
    """A phone-sized page with the desktop context's session cookie."""
    context = await browser.new_context(
        viewport=PHONE, base_url=platform.url, is_mobile=True, device_scale_factor=2
    )
    await context.add_cookies(await desktop.cookies())
    try:
        yield await context.new_page()
    finally:
        await context.close()


# -- without a browser ---------------------------------------------------------------------------


async def test_no_page_or_stream_is_served_without_the_cookie(platform: Platform) -> None:
    """Pages answer 303 to the sign-in form, streams 401; a forged, expired or other-key
    cookie is no better; the assets are public."""
    async with httpx.AsyncClient(base_url=platform.url) as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 303, path
            location = response.headers["location"]
            assert location.startswith("/console/sign-in") or location == "/console/calls"
        for path in STREAMS:
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/console/static/console.css")).status_code == 200
        forged = [
            auth.issue("another-key", now=time.time()),
            auth.issue(API_KEY, now=1_000_000),  # long expired
            "v1.9999999999.abcdefghij.x",
        ]
        for token in forged:
            client.cookies.set(auth.COOKIE, token, path="/console")
            assert (await client.get("/console/calls")).status_code == 303
            assert (await client.get("/console/calls/stream")).status_code == 401
            client.cookies.clear()


async def test_signing_in_sets_a_strict_http_only_cookie_without_the_key(
    platform: Platform,
) -> None:
    """A wrong key is 401 and sets nothing; the right one sets an HTTP-only, SameSite=Strict
    cookie scoped to /console that is not the key; signing out clears it."""
    async with httpx.AsyncClient(base_url=platform.url) as client:
        wrong = await client.post("/console/sign-in", data={"key": "nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert "not one of this deployment" in wrong.text
        right = await client.post(
            "/console/sign-in", data={"key": API_KEY, "next": "https://evil.example/"}
        )
        assert right.status_code == 303 and right.headers["location"] == "/console/calls"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/console" in cookie and API_KEY not in cookie
        page = await client.get("/console/sessions")
        assert page.status_code == 200 and "Sessions" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        elsewhere = await client.post(
            "/console/sign-in", data={"key": API_KEY}, headers={"Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403
        out = await client.post("/console/sign-out")
        assert out.status_code == 303
        assert (await client.get("/console/sessions")).status_code == 303


# -- in the browser ------------------------------------------------------------------------------


async def test_a_wrong_key_is_refused_in_the_browser(browser: Any, platform: Platform) -> None:
    """The form says so, answers 401, and sets no cookie."""
    context = await browser.new_context(viewport=DESKTOP, base_url=platform.url)
    try:
        page = await context.new_page()
        await page.goto("/console/calls")
        await page.fill("#key", "definitely-not-the-key")
        async with page.expect_response("**/console/sign-in") as answer:
            await page.click("button[type=submit]")
        assert (await answer.value).status == 401
        await page.wait_for_selector("#sign-in-error")
        assert await context.cookies() == []
        await shoot(page, "sign-in-refused-1280")
    finally:
        await context.close()


async def test_a_call_appears_live_and_its_timeline_shows_the_abt_events(
    browser: Any, signed_in: Any, platform: Platform
) -> None:
    """With the live list open, a call requested through the API appears in it without a
    reload and gets its three ABT events; its timeline lists them with every other event."""
    page = await signed_in.new_page()
    await page.goto("/console/calls")
    await page.wait_for_selector("#live-status[data-state=live]", timeout=WAIT_MS)
    async with httpx.AsyncClient(base_url=platform.url) as api:
        body = {"to_number": PATIENT, "from_number": CLINIC}
        response = await api.post("/v1/calls", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        ref = response.json()["call_ref"]
    row = f'tr[data-ref="{ref}"]'
    await page.wait_for_selector(row, timeout=WAIT_MS)
    await page.wait_for_selector(f'{row}[data-abt="3"]', timeout=WAIT_MS)
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    text = await page.inner_text(row)
    assert "outbound" in text and "+14" in text and PATIENT not in text
    await shoot(page, "live-calls-1280")

    async with page.expect_navigation():
        await page.click(f"{row} a")
    await page.wait_for_selector("#events li.is-abt >> nth=2", timeout=WAIT_MS)
    abt = await page.eval_on_selector_all(
        "#events li.is-abt", "items => items.map(i => i.dataset.abt)"
    )
    assert abt == ["voice_call_initiated", "call_started", "call_completed"]
    types = await page.eval_on_selector_all("#events li", "items => items.map(i => i.dataset.type)")
    assert {"call.requested", "call.dispatched", "retell.call_started", "dialog.turn"} <= set(types)
    shown = await page.inner_text("#events")
    assert PATIENT not in shown and PATIENT not in await page.content()
    await shoot(page, "call-timeline-1280")
    async with phone(browser, platform, signed_in) as small:
        await small.goto(f"/console/calls/{ref}")
        await small.wait_for_selector("#events li.is-abt >> nth=2")
        await shoot(small, "call-timeline-phone")
        await small.goto("/console/calls")
        await small.wait_for_selector(row)
        await shoot(small, "live-calls-phone")
    await page.close()


async def test_sessions_show_a_dropped_booking_and_its_dialog(
    signed_in: Any, platform: Platform
) -> None:
    """A patient who hangs up mid-booking: the session is listed as dropped at its stage,
    and its page shows what was said."""
    caller = "+14155550199"
    async with httpx.AsyncClient(base_url=platform.sim_url) as sim:
        body = {
            "from_number": caller,
            "to_number": CLINIC,
            "faults": {"drop_after_phrase": "which day"},
        }
        response = await sim.post("/sim/inbound", json=body)
        assert response.status_code == 201, response.text
    page = await signed_in.new_page()
    dropped = "#dropped tr.status-dropped"
    await page.goto("/console/sessions")
    for _ in range(WAIT_MS // 250):  # the sessions page is not live: look again
        if await page.query_selector(dropped):
            break
        await page.wait_for_timeout(250)
        await page.reload()
    assert await page.query_selector(dropped), "the dropped session was never listed"
    assert caller not in await page.content()
    await shoot(page, "sessions-1280")
    async with page.expect_navigation():
        await page.click(f"{dropped} a")
    turns = await page.eval_on_selector_all("#dialog li.turn", "items => items.length")
    assert turns >= 2
    assert "which day" in (await page.inner_text("#dialog")).lower()
    await shoot(page, "session-dialog-1280")
    await page.close()


async def test_health_shows_the_stack_lag_and_parked_records(
    signed_in: Any, platform: Platform
) -> None:
    """Every part of the stack answers; the worker's group and the views' checkpoints are
    listed with their lag per partition; the parked records are counted."""
    page = await signed_in.new_page()
    await page.goto("/console/health")
    parts = await page.eval_on_selector_all(
        "#parts li", "items => items.map(i => [i.dataset.part, i.classList.contains('up')])"
    )
    assert dict(parts) == {"broker": True, "Redis": True, "SQL database": True, "warehouse": True}
    readers = await page.inner_text("#lag")
    assert platform.settings.worker.app_id in readers
    assert "call-lifecycle" in readers and "timeline" in readers
    assert await page.inner_text("#deadletters") == "0"
    assert await page.inner_text("#quarantined") == "0"
    await shoot(page, "health-1280")
    await page.close()

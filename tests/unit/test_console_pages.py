"""The console's templates: every page renders, values are escaped, numbers stay masked."""

from __future__ import annotations

import datetime as dt

from ringlog.calls.state import CallState
from ringlog.console import pages
from ringlog.console.health import Health, LagRow, PartHealth
from ringlog.console.models.board import board, call_row
from ringlog.console.models.sessions import TurnRow, session_row
from ringlog.sessions.state import SessionState

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
PHONE = "+14155550123"


def test_every_page_renders_escaped_and_masked() -> None:
    state = CallState(
        call_ref="call_<b>x</b>",
        direction="outbound",
        dispatch="dispatched",
        phase="ongoing",
        to_number=PHONE,
        started_at=T0,
    )
    session = SessionState(
        session_id="ses_1",
        phone=PHONE,
        task="t",
        status="dropped",
        stage="date",
        started_at=T0,
        updated_at=T0,
        call_refs=("call_1",),
    )
    turn = TurnRow("call_1", T0, 0, "user", "<script>alert(1)</script>", "name")
    health = Health(
        measured_at=T0,
        parts=(PartHealth("broker", "127.0.0.1:9092", True),),
        lag=(LagRow("g", "group", "kafka", "calls", ((0, 1, 2, 1),)),),
        deadletters=0,
        deadletter_latest=(),
        quarantined=None,
        quarantine_latest=(),
    )
    rendered = [
        pages.render("sign_in.html", next="/console/calls", error="<i>no</i>", keys=True),
        pages.render(
            "calls.html",
            page="calls",
            board=board([state], [], limit=5),
            limit=5,
            feed=[],
            since="t.calls/0:1",
        ),
        pages.render(
            "call.html",
            page="calls",
            call_ref=state.call_ref,
            row=call_row(state),
            session=session_row(session),
            events=[],
            stage="",
            since="",
        ),
        pages.render(
            "sessions.html",
            page="sessions",
            active=[],
            dropped=[session_row(session)],
            total=1,
            shown=1,
        ),
        pages.render(
            "session.html",
            page="sessions",
            session=session_row(session),
            refs=["call_1"],
            turns=[turn],
        ),
        pages.render("health.html", page="health", health=health),
        pages.render("missing.html", page="calls", what="No call <x>."),
    ]
    for html in rendered:
        assert PHONE not in html
        assert "<script>alert" not in html and "<b>x</b>" not in html and "<i>no</i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered[4]
    assert 'data-started="' in rendered[1] and "?v=" in rendered[0]


def test_only_the_two_assets_are_served() -> None:
    css = pages.asset("console.css")
    assert css is not None and css[1].startswith("text/css") and b"@media" in css[0]
    assert pages.asset("../routes.py") is None and pages.asset("auth.py") is None

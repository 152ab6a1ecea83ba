"""Which call each event sits under on the timeline view (pure)."""

from __future__ import annotations

from ringlog.projections.base import Event
from ringlog.schemas import CallRequested, Envelope, SessionExpired, SessionProgressed
from ringlog.views.store import timeline_rows

PHONE = "+14155550123"


def _event(envelope: Envelope, offset: int) -> Event:
    return Event("t.topic", 0, offset, envelope)


def test_a_session_event_sits_under_its_call_and_an_expiry_under_none() -> None:
    request = Envelope.new(
        CallRequested(call_ref="call-1", to_number=PHONE, from_number="+14155559876", agent_id="a"),
        source="test",
    )
    progressed = Envelope.new(
        SessionProgressed(session_id="s-1", phone=PHONE, call_ref="call-1", stage="date"),
        source="test",
    )
    expired = Envelope.new(SessionExpired(session_id="s-1", phone=PHONE), source="test")
    rows = timeline_rows([_event(request, 0), _event(progressed, 1), _event(expired, 2)])
    assert [(r.offset, r.call_ref) for r in rows] == [(0, "call-1"), (1, "call-1")]
    assert progressed.key == PHONE  # keyed by the number on the log, not by the call

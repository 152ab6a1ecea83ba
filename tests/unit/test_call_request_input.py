"""What an upstream call request may say: the body of ``POST /v1/calls`` and of the SQS
bridge's call-request queue, parsed by one rule (``ringlog.api.ingest.parse_call_request``)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ringlog.api.ingest import Rejected, parse_call_request
from ringlog.api.models import CallRequestIn

BODY = {"to_number": "+14155550123", "from_number": "+14155559876"}


def test_a_time_with_a_zone_is_kept_as_that_instant() -> None:
    parsed = parse_call_request(orjson.dumps({**BODY, "scheduled_at": "2030-01-15T09:30:00+02:00"}))
    assert isinstance(parsed, CallRequestIn)
    assert parsed.scheduled_at == datetime(2030, 1, 15, 7, 30, tzinfo=UTC)


def test_a_time_without_a_zone_is_refused_naming_the_field_not_the_value() -> None:
    parsed = parse_call_request(orjson.dumps({**BODY, "scheduled_at": "2030-01-15T09:30:00"}))
    assert isinstance(parsed, Rejected)
    assert "scheduled_at" in parsed.reason
    assert "2030-01-15" not in parsed.reason

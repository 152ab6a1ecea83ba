"""The task field allow-list, and the pure fold of known and deleted tasks."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from ringlog.api.task_models import IncomingCallIn, RescheduleIn
from ringlog.tasks import ALLOWED, FieldErrors, TaskFields, unknown_fields
from ringlog.tasks import validate_fields as check


def test_the_allow_list_names_the_outreach_fields() -> None:
    assert {
        "status",
        "priority",
        "notes",
        "outcome",
        "callback_number",
        "preferred_language",
        "assigned_to",
        "due_date",
    } <= ALLOWED


def test_valid_fields_become_json_scalars_and_only_given_ones_are_kept() -> None:
    values = check(
        {
            "status": "scheduled",
            "due_date": "2024-10-08",
            "callback_number": "+14155550123",
            "preferred_language": "es-MX",
            "max_attempts": 3,
            "do_not_call": False,
            "notes": None,
        }
    )
    assert values == {
        "status": "scheduled",
        "due_date": "2024-10-08",
        "callback_number": "+14155550123",
        "preferred_language": "es-MX",
        "max_attempts": 3,
        "do_not_call": False,
        "notes": None,  # null clears the field: it is kept, not dropped
    }


def test_unknown_fields_are_all_named() -> None:
    with pytest.raises(FieldErrors) as caught:
        check({"status": "open", "foo": 1, "bar": "x"})
    assert str(caught.value) == "unknown fields: bar, foo"
    assert caught.value.errors == {"bar": "unknown field", "foo": "unknown field"}
    assert unknown_fields({"status": 1, "zz": 2, "aa": 3}) == ["aa", "zz"]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"status": "bogus"}, "status"),
        ({"priority": 3}, "priority"),
        ({"notes": "x" * 4001}, "notes"),
        ({"callback_number": "555-0123"}, "callback_number"),
        ({"preferred_language": "English please"}, "preferred_language"),
        ({"assigned_to": ""}, "assigned_to"),
        ({"due_date": "next tuesday"}, "due_date"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"do_not_call": "yes"}, "do_not_call"),
    ],
)
def test_invalid_values_are_refused_by_name(fields: dict[str, object], name: str) -> None:
    with pytest.raises(FieldErrors) as caught:
        check(fields)
    assert list(caught.value.errors) == [name]
    assert name in str(caught.value)


def test_an_empty_writeback_is_refused() -> None:
    with pytest.raises(FieldErrors, match="at least one field"):
        check({})
    with pytest.raises(ValidationError):
        TaskFields.model_validate({})


def test_unknown_and_invalid_fields_are_reported_together() -> None:
    with pytest.raises(FieldErrors) as caught:
        check({"foo": 1, "status": "bogus"})
    assert set(caught.value.errors) == {"foo", "status"}
    assert str(caught.value).startswith("unknown fields: foo; status: ")


def test_reschedule_needs_an_aware_time_in_the_future() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    body = RescheduleIn(scheduled_at=later.astimezone(dt.timezone(dt.timedelta(hours=-7))))
    assert body.scheduled_at == later
    assert body.scheduled_at.utcoffset() == dt.timedelta(0)  # stored in UTC
    with pytest.raises(ValidationError, match="in the future"):
        RescheduleIn(scheduled_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    with pytest.raises(ValidationError, match="timezone"):
        RescheduleIn(scheduled_at=later.replace(tzinfo=None))


def test_incoming_call_numbers_must_be_e164() -> None:
    IncomingCallIn(from_number="+14155550123", to_number="+14155559876")
    with pytest.raises(ValidationError) as caught:
        IncomingCallIn(from_number="4155550123", to_number="+14155559876")
    assert [e["loc"] for e in caught.value.errors()] == [("from_number",)]

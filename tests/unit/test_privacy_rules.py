"""Patient data protected by default, the pure parts: one scrubbed logging set-up for every
logger, the phone-hash key check, and texts bounded and clean at the edge."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import orjson
import pytest
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from ringlog import logs
from ringlog.api.models import CallRequestIn
from ringlog.api.task_models import DeleteIn, FieldWritebackIn, IncomingCallIn, RescheduleIn
from ringlog.config import (
    HOME_ENV,
    STACK_FILE,
    Settings,
    environment_variables,
    on_embedded_stack,
    require_phone_hash_key,
)
from ringlog.errors import ConfigurationError
from ringlog.schemas import Patient, RetellCallInbound, RetellCallStarted
from tests.support.examples import retell_call
from tests.support.logcapture import captured_logs

PHONE = "+14155550123"
NAME = "Ada Lovelace"
DOB = "1815-12-10"


# -- logs ---------------------------------------------------------------------------------------


@pytest.fixture(name="captured")
def _captured() -> Iterator[io.StringIO]:
    """The process's logs configured into a buffer; the set-up undone afterwards."""
    with captured_logs() as out:
        yield out


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


class PatientBody(BaseModel):
    """:class:`Patient` as a pydantic body reads one. The API's bodies are pydantic, whose
    validation errors print the values they refuse (``input_value=…``): what logs must hide.
    The event model is a msgspec Struct, whose errors name fields, never values (tested below)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    date_of_birth: dt.date


def invalid_patient() -> ValidationError:
    try:
        PatientBody.model_validate({"name": NAME, "date_of_birth": f"{DOB}x", "phone": PHONE})
    except ValidationError as exc:
        return exc
    raise AssertionError("the patient validated")


def test_library_and_uvicorn_lines_are_json_and_scrubbed_like_ringlogs(
    captured: io.StringIO,
) -> None:
    """A uvicorn traceback of a validation error and a library warning with a number go
    through the same processors as ringlog's own lines: JSON, masked, no input values."""
    error = invalid_patient()
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=error)
    logging.getLogger("aiokafka").warning("lost %s", PHONE)
    logging.getLogger("aiokafka").info("not shown: libraries log from WARNING up")
    structlog.get_logger("ringlog.t").warning("failed", error=error, errors=error.errors())
    found = lines(captured)
    assert [line["event"] for line in found] == [
        "Exception in ASGI application",
        "lost +14*******23",
        "failed",
    ]
    assert found[0]["logger"] == "uvicorn.error" and found[0]["level"] == "error"
    assert "ValidationError" in str(found[0]["exception"])
    text = captured.getvalue()
    for personal in (PHONE, PHONE[1:], NAME, DOB):
        assert personal not in text, personal
    assert "input_value=<hidden>]" in text
    assert all("input" not in e for e in found[2]["errors"])  # type: ignore[attr-defined]


def test_event_validation_errors_name_the_field_and_not_the_values() -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert({"name": NAME, "date_of_birth": f"{DOB}x", "phone": PHONE}, Patient)
    assert "date_of_birth" in str(refused.value)
    for personal in (PHONE, NAME, DOB):
        assert personal not in str(refused.value), personal


def test_configure_twice_keeps_one_root_handler(captured: io.StringIO) -> None:
    logs.configure(stream=captured, cache_loggers=False)
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "ringlog"]
    assert len(ours) == 1


def test_uvicorn_is_told_to_leave_logging_alone() -> None:
    options = logs.uvicorn_options()
    assert options["log_config"] is None and options["access_log"] is False


def test_scrub_hides_input_values_up_to_the_end_of_the_line() -> None:
    text = "name\n  bad [type=x, input_value='Ada, input_type=str] Lovelace', input_type=str]\nok"
    assert logs.scrub(text) == "name\n  bad [type=x, input_value=<hidden>]\nok"


def test_scrub_hides_the_row_values_postgresql_quotes() -> None:
    refused = (
        'null value in column "b" violates not-null constraint\n'
        "DETAIL:  Failing row contains (Ada Lovelace, 1815-12-10, null)."
    )
    assert logs.scrub(refused).endswith("DETAIL:  Failing row contains (<hidden>).")
    duplicate = "DETAIL:  Key (name, born)=(Ada Lovelace, 1815-12-10) already exists."
    assert logs.scrub(duplicate) == "DETAIL:  Key (name, born)=(<hidden>) already exists."


# -- the phone-hash key -------------------------------------------------------------------------


@pytest.fixture(name="home")
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    for var in environment_variables():
        if var != HOME_ENV:
            monkeypatch.delenv(var, raising=False)
    return tmp_path


def embedded(home: Path) -> None:
    """Write the address file ``ringlog dev up`` writes, with a warehouse it started."""
    warehouse = {"host": "127.0.0.1", "port": 41234, "protocol": "http"}
    (home / STACK_FILE).write_text(json.dumps({"parts": {}, "settings": {"warehouse": warehouse}}))


def test_the_default_key_is_refused_outside_the_embedded_stack(home: Path) -> None:
    settings = Settings.load()
    assert not on_embedded_stack(settings)
    with pytest.raises(ConfigurationError, match="RINGLOG_SNOWFLAKE_PHONE_HASH_KEY"):
        require_phone_hash_key(settings)


def test_the_default_key_is_allowed_on_the_embedded_stack(home: Path) -> None:
    embedded(home)
    settings = Settings.load()
    assert on_embedded_stack(settings)
    require_phone_hash_key(settings)


def test_a_warehouse_given_elsewhere_is_not_the_embedded_stack(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded(home)
    monkeypatch.setenv("RINGLOG_SNOWFLAKE_HOST", "acme.snowflakecomputing.com")
    monkeypatch.setenv("RINGLOG_SNOWFLAKE_PORT", "443")
    with pytest.raises(ConfigurationError, match="RINGLOG_SNOWFLAKE_PHONE_HASH_KEY"):
        require_phone_hash_key(Settings.load())
    monkeypatch.setenv("RINGLOG_SNOWFLAKE_PHONE_HASH_KEY", "a-long-random-secret")
    require_phone_hash_key(Settings.load())


def test_transcripts_are_off_unless_the_setting_opts_in(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load().warehouse.transcripts is False
    assert environment_variables()["RINGLOG_WAREHOUSE_TRANSCRIPTS"] == "warehouse.transcripts"
    monkeypatch.setenv("RINGLOG_WAREHOUSE_TRANSCRIPTS", "true")
    assert Settings.load().warehouse.transcripts is True


# -- texts at the edge --------------------------------------------------------------------------

CALL = {"to_number": PHONE, "from_number": "+14155559876"}


@pytest.mark.parametrize(
    "changes",
    [
        {"task_ref": "t\x00"},
        {"task_ref": "t" * 129},
        {"patient_ref": "p\n1"},
        {"agent_id": "a\x7f"},
        {"metadata": {"call_ref": "c" * 129}},
        {"metadata": {"call_ref": "c\x00"}},
        {"metadata": {"k\x00": "v"}},
        {"metadata": {"k": "v\x00"}},
    ],
)
def test_call_requests_refuse_long_refs_and_control_characters(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CallRequestIn.model_validate(CALL | changes)


def test_call_requests_accept_clean_values_at_their_bounds() -> None:
    body = CallRequestIn.model_validate(
        CALL | {"task_ref": "t" * 128, "metadata": {"call_ref": "c" * 128, "note": "é ü"}}
    )
    assert body.task_ref == "t" * 128


def test_task_texts_are_clean_and_free_text_keeps_line_breaks() -> None:
    with pytest.raises(ValidationError, match="notes"):
        FieldWritebackIn.model_validate({"fields": {"notes": "call back\x00"}})
    with pytest.raises(ValidationError, match="assigned_to"):
        FieldWritebackIn.model_validate({"fields": {"assigned_to": "nurse\n1"}})
    with pytest.raises(ValidationError):
        RescheduleIn.model_validate({"scheduled_at": "2999-01-01T00:00:00Z", "call_ref": "c" * 129})
    with pytest.raises(ValidationError):
        DeleteIn.model_validate({"reason": "spam\x00"})
    with pytest.raises(ValidationError):
        IncomingCallIn.model_validate(CALL | {"actor": "staff\t1"})
    kept = FieldWritebackIn.model_validate({"fields": {"notes": "line one\n\tline two"}})
    assert kept.fields.notes == "line one\n\tline two"


@pytest.mark.parametrize(
    "changes",
    [
        {"call_id": "c" * 122},
        {"call_id": "c\x00"},
        {"metadata": {"call_ref": "r" * 129}},
        {"metadata": {"call_ref": "r\x00"}},
    ],
)
def test_retell_webhooks_with_unusable_ids_do_not_validate(changes: dict[str, object]) -> None:
    """What the webhook route answers 400 and quarantines (see ``ringlog.api.ingest``)."""
    with pytest.raises(msgspec.ValidationError):
        RetellCallStarted.from_body(
            {"event": "call_started", "call": retell_call("call_started") | changes}
        )


def test_retell_texts_other_than_ids_are_kept_as_sent() -> None:
    call = retell_call("call_started") | {
        "call_id": "c" * 121,
        "transcript": "nul \x00 kept",
        "metadata": {"call_ref": 7},
    }
    event = RetellCallStarted.from_body({"event": "call_started", "call": call})
    assert event.call.transcript == "nul \x00 kept"
    inbound = {"from_number": PHONE, "to_number": PHONE, "call_id": "c" * 122}
    with pytest.raises(msgspec.ValidationError):
        RetellCallInbound.from_body({"event": "call_inbound", "call_inbound": inbound})

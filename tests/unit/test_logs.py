"""Log lines never carry a full phone number."""

from __future__ import annotations

import re

import orjson
import pytest
import structlog

from ringlog import logs
from ringlog.logs import mask_phone, mask_phone_numbers


def test_masks_e164_and_formatted_numbers_keeping_ends() -> None:
    """E.164 and formatted numbers keep only their first and last two digits."""
    assert mask_phone("+14155550123") == "+14*******23"
    assert mask_phone("call (415) 555-0123 now") == "call 41******23 now"


def test_leaves_dates_offsets_and_ids_alone() -> None:
    """Timestamps, dates, offsets and ids are not mistaken for phone numbers."""
    for text in (
        "offset 12345678 of 3 partitions",
        "2026-11-23T05:49:46.123482Z",
        "call_01a206de-b5a1-7cff-890d-4a7d31f21111",
        "took 1714608475945 ms",
    ):
        assert mask_phone(text) == text


def test_configured_logs_mask_numbers_but_not_the_timestamp(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A configured JSON log line masks the number and keeps an intact ISO timestamp."""
    logs.configure()
    try:
        structlog.get_logger("t").info("dialled", to="+14155550123")
    finally:
        # the configured logger holds pytest's capture stream, which closes after this test
        structlog.reset_defaults()
    line = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["to"] == "+14*******23"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z", line["timestamp"])


def test_processor_masks_nested_values() -> None:
    """The structlog processor masks numbers inside nested dicts and lists too."""
    with structlog.testing.capture_logs(processors=[mask_phone_numbers]) as logs:
        structlog.get_logger().info("call", to="+14155550123", call={"from": ["+442071838750"]})
    assert logs[0]["to"] == "+14*******23"
    assert logs[0]["call"] == {"from": ["+44********50"]}

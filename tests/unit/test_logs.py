"""Log lines never carry a full phone number."""

from __future__ import annotations

import structlog

from ringlog.logs import mask_phone, mask_phone_numbers


def test_masks_e164_and_formatted_numbers_keeping_ends() -> None:
    """E.164 and formatted numbers keep only their first and last two digits."""
    assert mask_phone("+14155550123") == "+14*******23"
    assert mask_phone("call (415) 555-0123 now") == "call (41******23 now"


def test_leaves_short_numbers_and_ids_alone() -> None:
    """Counts, offsets and short ids are not mistaken for phone numbers."""
    assert mask_phone("offset 12345 of 3 partitions") == "offset 12345 of 3 partitions"


def test_processor_masks_nested_values() -> None:
    """The structlog processor masks numbers inside nested dicts and lists too."""
    with structlog.testing.capture_logs(processors=[mask_phone_numbers]) as logs:
        structlog.get_logger().info("call", to="+14155550123", call={"from": ["+442071838750"]})
    assert logs[0]["to"] == "+14*******23"
    assert logs[0]["call"] == {"from": ["+44********50"]}

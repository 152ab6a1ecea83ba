"""Retell webhook signatures: the documented scheme, on raw bytes, in a time window."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from ringlog.api.signature import Verdict, digest, sign, verify

KEY = "key_test_webhook"
NOW = 1_714_608_491_736


def test_matches_a_plain_hmac_computed_by_hand() -> None:
    """The header is v=<ms>,d=HMAC_SHA256(key, body + str(ms)) as retell.md §2.2 states."""
    body = b'{"event":"call_started","call":{"call_id":"c1"}}'
    expected = hmac.new(KEY.encode(), body + str(NOW).encode(), hashlib.sha256).hexdigest()
    assert sign(body, KEY, NOW) == f"v={NOW},d={expected}"


@given(body=st.binary(max_size=2048), skew_s=st.integers(min_value=-300, max_value=300))
def test_any_body_signed_inside_the_window_verifies(body: bytes, skew_s: int) -> None:
    """Whatever the bytes (non-ASCII included), a signature inside ±5 min verifies."""
    assert verify(body, KEY, sign(body, KEY, NOW + skew_s * 1000), now_ms=NOW) is Verdict.OK


def test_refusals_say_why() -> None:
    """Missing, malformed, stale, tampered and wrong-key signatures are each refused."""
    body = b'{"event":"call_ended","call":{"call_id":"c1"}}'
    good = sign(body, KEY, NOW)
    assert verify(body, KEY, None, now_ms=NOW) is Verdict.MISSING
    assert verify(body, KEY, "sha256=abc", now_ms=NOW) is Verdict.MALFORMED
    assert verify(body, KEY, good, now_ms=NOW + 301_000) is Verdict.STALE
    assert verify(body, KEY, good, now_ms=NOW - 301_000) is Verdict.STALE
    assert verify(body + b" ", KEY, good, now_ms=NOW) is Verdict.MISMATCH
    assert verify(body, "another_key", good, now_ms=NOW) is Verdict.MISMATCH


def test_reserialised_body_does_not_verify() -> None:
    """Verification is on raw bytes: the same JSON with different spacing is refused."""
    raw = '{"event":"call_ended","call":{"transcript":"Grüße"}}'.encode()
    spaced = b'{"event": "call_ended", "call": {"transcript": "Gr\\u00fc\\u00dfe"}}'
    assert verify(spaced, KEY, sign(raw, KEY, NOW), now_ms=NOW) is Verdict.MISMATCH


def test_keys_do_not_leak_into_each_other() -> None:
    """Each key's digest matches plain HMAC whatever was signed before, and under which key."""
    body = b'{"event":"call_started"}'
    for key in ("key-a", "key-b", "key-a", "key-a"):
        expected = hmac.new(key.encode(), body + b"1700000000000", hashlib.sha256).hexdigest()
        assert digest(body, key, 1_700_000_000_000) == expected

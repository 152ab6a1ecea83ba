"""The console's session token: a proof of an API key, never the key, with an expiry."""

from __future__ import annotations

import pytest

from ringlog.api.keys import matching_key
from ringlog.console.auth import SESSION_TTL_S, issue, safe_next, verify

KEY = "dev-key-123"
NOW = 1_800_000_000.0


def test_a_token_issued_for_a_key_verifies_against_it_until_it_expires() -> None:
    token = issue(KEY, now=NOW)
    assert verify(token, [KEY], now=NOW)
    assert verify(token, ["other", KEY], now=NOW + SESSION_TTL_S - 1)
    assert not verify(token, [KEY], now=NOW + SESSION_TTL_S)


def test_the_token_does_not_hold_the_key() -> None:
    token = issue(KEY, now=NOW, nonce="abcdefghij")
    assert KEY not in token and "dev-key" not in token
    assert token.startswith("v1.") and token.count(".") == 3


def test_a_token_is_refused_under_another_or_a_removed_key() -> None:
    token = issue(KEY, now=NOW)
    assert not verify(token, ["another-key"], now=NOW)
    assert not verify(token, [], now=NOW)


@pytest.mark.parametrize("part", [1, 2, 3])
def test_any_change_to_a_token_breaks_it(part: int) -> None:
    fields = issue(KEY, now=NOW, nonce="abcdefghij").split(".")
    fields[part] = {1: str(int(NOW) + 60), 2: "abcdefghik", 3: "A" * 43}[part]
    assert not verify(".".join(fields), [KEY], now=NOW)


def test_a_token_dated_beyond_the_longest_session_is_refused() -> None:
    far = issue(KEY, now=NOW + 10 * SESSION_TTL_S)
    assert not verify(far, [KEY], now=NOW)


@pytest.mark.parametrize(
    "token",
    [None, "", "v1", "v2.1.abcdefghij.x", "v1.x.abcdefghij.y", "v1.1.a b.c", "v1." + "9" * 300],
)
def test_malformed_tokens_are_refused(token: str | None) -> None:
    assert not verify(token, [KEY], now=NOW)


def test_a_bad_nonce_cannot_be_issued() -> None:
    with pytest.raises(ValueError, match="nonce"):
        issue(KEY, now=NOW, nonce="a.b")


def test_the_posted_key_must_be_one_of_the_keys() -> None:
    assert matching_key(f"  {KEY} ", ["x", KEY]) == KEY
    assert matching_key("dev-key", [KEY]) is None
    assert matching_key("", [KEY, ""]) is None
    assert matching_key(KEY, []) is None


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/console/sessions", "/console/sessions"),
        ("/console/calls/call_1?x=1", "/console/calls/call_1?x=1"),
        (None, "/console/calls"),
        ("https://evil.example/", "/console/calls"),
        ("//evil.example/console/", "/console/calls"),
        ("/console/..//evil", "/console/calls"),
        ("/console\\evil", "/console/calls"),
        ("/v1/calls", "/console/calls"),
        ("/console/sign-in", "/console/calls"),
        ("/console/x\ny", "/console/calls"),
    ],
)
def test_after_signing_in_only_console_pages_are_gone_to(asked: str | None, goes: str) -> None:
    assert safe_next(asked) == goes

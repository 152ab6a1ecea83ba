"""Signing in to the console: a session cookie that proves an API key without holding it.

Signing in posts one of ``RINGLOG_API_KEYS`` once (a form, never the URL). The answer sets a
cookie holding a *token*, not the key: ``v1.<expires>.<nonce>.<mac>``, where ``expires`` is a
Unix time, ``nonce`` random, and ``mac`` the HMAC-SHA256 of ``v1|expires|nonce`` under a key
derived from the API key (:func:`issue`). A request's token is valid while it has not expired
and its MAC matches one of the keys configured now (:func:`verify`): taking a key out of
``RINGLOG_API_KEYS`` ends the sessions signed in with it at the next start, and nothing on the
server remembers sessions. Comparisons are constant-time.

The cookie is HTTP-only (scripts cannot read it), ``SameSite=Strict`` (no other site's page
can make the browser send it) and scoped to ``/console``; ``Secure`` when the request came
over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

#: The cookie's name.
COOKIE = "ringlog_console"
#: The cookie's path: only the console's pages and streams receive it.
COOKIE_PATH = "/console"
#: How long a sign-in lasts.
SESSION_TTL_S = 8 * 3600
#: The token format's version (the first field).
VERSION = "v1"
#: What the MAC key is derived with: a console token is no other kind of proof of the key.
_PURPOSE = b"ringlog-console-session"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MAC = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(key: str, expires: int, nonce: str) -> str:
    derived = hmac.new(key.encode(), _PURPOSE, hashlib.sha256).digest()
    message = f"{VERSION}|{expires}|{nonce}".encode()
    return _b64(hmac.new(derived, message, hashlib.sha256).digest())


def issue(key: str, *, now: float, ttl_s: int = SESSION_TTL_S, nonce: str | None = None) -> str:
    """A token proving ``key`` until ``now + ttl_s`` (pure but for the random nonce when
    none is given)."""
    expires = int(now) + ttl_s
    chosen = nonce if nonce is not None else secrets.token_urlsafe(16)
    if not _NONCE.match(chosen):
        raise ValueError("a nonce is 8 to 64 URL-safe base64 characters")
    return f"{VERSION}.{expires}.{chosen}.{_mac(key, expires, chosen)}"


def verify(
    token: str | None, keys: Sequence[str], *, now: float, max_ttl_s: int = SESSION_TTL_S
) -> bool:
    """Whether ``token`` is well formed, unexpired, not dated further ahead than
    ``max_ttl_s``, and signed under one of ``keys`` (pure; every key is tried, in
    constant time each)."""
    if not token or len(token) > 200:
        return False
    parts = token.split(".")
    if len(parts) != 4:
        return False
    version, expires_text, nonce, mac = parts
    if version != VERSION or not expires_text.isdigit() or not _NONCE.match(nonce):
        return False
    if not _MAC.match(mac):
        return False
    expires = int(expires_text)
    if not now < expires <= now + max_ttl_s:
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_mac(key, expires, nonce), mac)
    return matched


def safe_next(path: str | None, default: str = "/console/calls") -> str:
    """Where to go after signing in: ``path`` when it is a console page of this site (no
    scheme, no host, no ``//``, no back-slash), else ``default`` (no open redirect)."""
    if (
        not path
        or not path.startswith("/console/")
        or "//" in path
        or "\\" in path
        or any(ord(c) < 0x21 for c in path)
        or path.startswith("/console/sign-")
    ):
        return default
    return path


__all__ = [
    "COOKIE",
    "COOKIE_PATH",
    "SESSION_TTL_S",
    "issue",
    "safe_next",
    "verify",
]

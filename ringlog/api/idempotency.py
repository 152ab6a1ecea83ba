"""``Idempotency-Key`` for the routes that append (``POST /v1/calls``, ``/v1/tasks/…``): a
retry gets the same answer and appends nothing.

The rule lives once, in :func:`append_once`; the routes say only what to append and what to
answer. A key is claimed in Redis (``SET NX``) before the append and completed with the answer
(a call ref, an event id) after it. A retry of a completed key with the same request answers
from Redis without appending; the same key with another request is 422; a retry while the
first attempt is still in flight is told to retry (409); a failed append releases the claim.
Routes derive the event id from the key, so even a lost completion (Redis write failing after
the append) yields the same event id, which consumers deduplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from fastapi import Header, HTTPException, status
from redis.exceptions import RedisError

from ringlog.errors import RetryableError

#: The header's name and the keys it accepts (1 to 255 characters).
HEADER = "Idempotency-Key"
KEY_MIN_LENGTH, KEY_MAX_LENGTH = 1, 255


def key_header(description: str) -> Any:
    """The ``Idempotency-Key`` header parameter (use as ``Annotated[str | None, key_header(…)]``);
    a key outside 1-255 characters is refused with 422 before the route runs."""
    return Header(
        alias=HEADER,
        min_length=KEY_MIN_LENGTH,
        max_length=KEY_MAX_LENGTH,
        description=description,
    )


@dataclass(frozen=True)
class Prior:
    """What an earlier request with the same key did: its answer once it is ``done``."""

    state: Literal["pending", "done"]
    fingerprint: str
    answer: str | None


class IdempotencyStore:
    """Claims and completions of idempotency keys, kept for ``ttl_s`` seconds."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_s: int = 24 * 3600) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}\x1f{key}".encode()).hexdigest()[:32]
        return f"{self._prefix}idem:{digest}"

    # The stored record names the answer ``call_ref`` (what POST /v1/calls first stored), so
    # records written before the answer was generalised still read back.

    async def claim(self, scope: str, key: str, fingerprint: str) -> Prior | None:
        """Claim ``key`` for this request; return the earlier request's record if one exists."""
        value = orjson.dumps({"state": "pending", "fingerprint": fingerprint, "call_ref": None})
        try:
            claimed = await self._redis.set(self._key(scope, key), value, nx=True, ex=self._ttl_s)
            if claimed:
                return None
            existing = await self._redis.get(self._key(scope, key))
        except (RedisError, OSError) as exc:
            raise RetryableError(f"idempotency store unavailable: {exc}") from exc
        if existing is None:  # expired between the two calls: claim again
            return await self.claim(scope, key, fingerprint)
        data = orjson.loads(existing)
        return Prior(data["state"], data["fingerprint"], data["call_ref"])

    async def complete(self, scope: str, key: str, fingerprint: str, answer: str) -> None:
        """Record that the request with ``key`` was answered ``answer``."""
        value = orjson.dumps({"state": "done", "fingerprint": fingerprint, "call_ref": answer})
        try:
            await self._redis.set(self._key(scope, key), value, ex=self._ttl_s)
        except (RedisError, OSError) as exc:
            raise RetryableError(f"idempotency store unavailable: {exc}") from exc

    async def release(self, scope: str, key: str) -> None:
        """Forget a claim whose request failed, so a retry can proceed."""
        # the claim expires on its own if this fails; the caller's error is what matters
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._key(scope, key))


def fingerprint(body: bytes) -> str:
    """A digest of the request body, to refuse a key reused for a different request."""
    return hashlib.sha256(body).hexdigest()


def key_scope(api_key: str, prefix: str = "") -> str:
    """The namespace of a caller's keys: ``prefix`` and 16 hex digits of the API key's SHA-256
    (callers cannot see or collide with each other's keys)."""
    return prefix + hashlib.sha256(api_key.encode()).hexdigest()[:16]


async def append_once(
    store: IdempotencyStore,
    scope: str,
    key: str | None,
    request: bytes,
    append: Callable[[], Awaitable[str]],
) -> str:
    """Run ``append`` (which appends the request's event and returns the answer) once per key.

    Without a key, ``append`` just runs. With one, the key is claimed for ``request`` (the bytes
    that identify the request; only their digest is stored):

    - an earlier request with the same key and another ``request`` → 422;
    - an earlier one with the same ``request``, completed → its stored answer, nothing appended;
    - an earlier one still in flight (or completed without an answer) → 409 + ``Retry-After``;
    - otherwise ``append`` runs; on any failure (a refusal it raises included) the claim is
      released so the request can be retried, on success its answer is stored.
    """
    if key is None:
        return await append()
    digest = fingerprint(request)
    prior = await store.claim(scope, key, digest)
    if prior is not None:
        if prior.fingerprint != digest:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "Idempotency-Key was already used for a different request",
            )
        if prior.state == "done" and prior.answer:
            return prior.answer
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "a request with this Idempotency-Key is in progress; retry",
            headers={"Retry-After": "1"},
        )
    try:
        answer = await append()
    except BaseException:
        await store.release(scope, key)
        raise
    await store.complete(scope, key, digest, answer)
    return answer

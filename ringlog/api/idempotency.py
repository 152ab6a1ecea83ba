"""``Idempotency-Key`` for ``POST /v1/calls``: a retry gets the same call ref, no second event.

A key is claimed in Redis (``SET NX``) before the append and completed with the call ref after
it. A retry of a completed key answers from Redis without appending; a retry while the first
attempt is still in flight is told to retry (409); a failed append releases the claim. The
event id and call ref are derived from the key, so even a lost completion (Redis write failing
after the append) yields the same event id, which consumers deduplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ringlog.errors import RetryableError


@dataclass(frozen=True)
class Prior:
    """What an earlier request with the same key did."""

    state: Literal["pending", "done"]
    fingerprint: str
    call_ref: str | None


class IdempotencyStore:
    """Claims and completions of idempotency keys, kept for ``ttl_s`` seconds."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_s: int = 24 * 3600) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}\x1f{key}".encode()).hexdigest()[:32]
        return f"{self._prefix}idem:{digest}"

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

    async def complete(self, scope: str, key: str, fingerprint: str, call_ref: str) -> None:
        """Record that the request with ``key`` produced ``call_ref``."""
        value = orjson.dumps({"state": "done", "fingerprint": fingerprint, "call_ref": call_ref})
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

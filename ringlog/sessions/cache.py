"""The Redis session cache: open sessions by phone number, kept beside the sessions view.

Writers put a session's new state right after its events are appended, so a callback a second
after a drop finds it at once. The log stays the truth: on a miss (a number not seen lately,
or Redis flushed) the cache asks the sessions view (kept from ``sessions`` by the runtime, see
:mod:`ringlog.views`), stores an open session it finds, and answers from it. Closed sessions
are deleted. While the view's database is unreachable a miss stands (a warning is logged):
Redis holds every open session, so a call is served as a new caller's rather than refused.

A number also has a *claim* while a call speaks in its session, so two simultaneous calls
cannot both take it.

Writes in one process are serialised by a lock; several API processes writing the same number
at the same moment are not (one process serves one call's socket, and a second call from the
number is refused by the claim).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import orjson
import redis.asyncio as aioredis
import structlog

from ringlog.projections.retrying import failure_type, is_transient
from ringlog.schemas import Envelope
from ringlog.sessions.state import SessionState, apply

log = structlog.get_logger("ringlog.sessions")

#: how long a dropped session's key outlives its expiry, so the next call can record the expiry
EXPIRY_GRACE = dt.timedelta(days=1)


#: Looks a number's session up in the sessions view (open or not; None if it never had one).
SessionLookup = Callable[[str], Awaitable[SessionState | None]]


class SessionCache:
    """Open sessions by number in Redis; a miss is answered from the sessions view."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, view: SessionLookup) -> None:
        self._redis = redis
        self._prefix = f"{prefix}session:"
        self._claims = f"{prefix}session-claim:"
        self._view = view
        self._lock = asyncio.Lock()

    def _key(self, phone: str) -> str:
        return self._prefix + phone

    async def get(self, phone: str) -> SessionState | None:
        """The number's open session, or None: from Redis, else from the sessions view (an
        open session found there is cached; None while the view is unreachable)."""
        raw = await self._redis.get(self._key(phone))
        if raw:
            return SessionState.from_json(orjson.loads(raw))
        try:
            state = await self._view(phone)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("sessions view unavailable; the cache miss stands", error=failure_type(exc))
            return None
        if state is None or not state.open:
            return None
        log.info("session cache filled from the view", session_id=state.session_id)
        async with self._lock:  # a state written meanwhile is newer: keep it
            await self._write(state, dt.datetime.now(dt.UTC), only_if_absent=True)
        return state

    async def put(self, state: SessionState, now: dt.datetime) -> None:
        """Store an open session (a dropped one expires a day after its own expiry); delete a
        closed one."""
        async with self._lock:
            await self._write(state, now)

    async def apply(
        self, state: SessionState | None, envelopes: list[Envelope], now: dt.datetime
    ) -> SessionState | None:
        """Fold freshly appended events into ``state`` and store the result."""
        for envelope in envelopes:
            state = apply(state, envelope)
        if state is not None:
            await self.put(state, now)
        return state

    async def _write(
        self, state: SessionState, now: dt.datetime, *, only_if_absent: bool = False
    ) -> None:
        key = self._key(state.phone)
        if not state.open:
            await self._redis.delete(key)
            return
        ttl: int | None = None
        if state.expires_at is not None:
            ttl = max(1, int((state.expires_at + EXPIRY_GRACE - now).total_seconds()))
        await self._redis.set(key, orjson.dumps(state.to_json()), ex=ttl, nx=only_if_absent)

    async def claim(self, phone: str, call_ref: str, ttl: dt.timedelta) -> bool:
        """Take the number for ``call_ref``; False if another call holds it (the same call
        claiming again, as on a socket reconnect, succeeds)."""
        key = self._claims + phone
        if await self._redis.set(key, call_ref, nx=True, ex=int(ttl.total_seconds())):
            return True
        return _text(await self._redis.get(key)) == call_ref

    async def release(self, phone: str, call_ref: str) -> None:
        """Give the number back if ``call_ref`` holds it."""
        key = self._claims + phone
        if _text(await self._redis.get(key)) == call_ref:
            await self._redis.delete(key)


async def forget_sessions(redis: aioredis.Redis, *, prefix: str, batch: int = 500) -> int:
    """Delete every cached session under ``prefix`` (claims are kept) and return how many:
    after a rebuild of the sessions view, the next read of each number is answered from the
    new view. Walks the cached keys (open sessions: live work, not history) with ``SCAN``."""
    forgotten = 0
    pending: list[bytes | str] = []
    async for key in redis.scan_iter(match=f"{prefix}session:*", count=batch):
        pending.append(key)
        if len(pending) >= batch:
            forgotten += await redis.unlink(*pending)
            pending.clear()
    if pending:
        forgotten += await redis.unlink(*pending)
    return forgotten


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value

"""The Redis session cache: open sessions by phone number, a projection of ``sessions``.

Writers put a session's new state right after its events are appended, so a callback a second
after a drop finds it. The log stays the truth: a marker key says the cache was built from the
log; when Redis is empty or was flushed the marker is gone, and the next read rebuilds every
open session from ``sessions`` first. Closed sessions are deleted. A number also has a *claim*
while a call speaks in its session, so two simultaneous calls cannot both take it.

Writes and rebuilds in one process are serialised by a lock; several API processes writing the
same number at the same moment are not (one process serves one call's socket, and a second
call from the number is refused by the claim).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import redis.asyncio as aioredis
import structlog

from ringlog.config import KafkaSettings
from ringlog.schemas import Envelope
from ringlog.sessions.state import SessionState, apply, fold
from ringlog.streams.replay import read_to_end

log = structlog.get_logger("ringlog.sessions")

#: how long a dropped session's key outlives its expiry, so the next call can record the expiry
EXPIRY_GRACE = dt.timedelta(days=1)


class SessionCache:
    """Open sessions by number in Redis, rebuilt from the log when missing."""

    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, kafka: KafkaSettings, topic: str
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}session:"
        self._marker = f"{prefix}sessions:built"
        self._claims = f"{prefix}session-claim:"
        self._kafka = kafka
        self._topic = topic
        self._lock = asyncio.Lock()

    def _key(self, phone: str) -> str:
        return self._prefix + phone

    async def ensure_built(self) -> None:
        """Rebuild from the log unless the marker says the cache is whole."""
        if not await self._redis.exists(self._marker):
            await self.rebuild()

    async def get(self, phone: str) -> SessionState | None:
        """The number's open session, or None; rebuilds the cache first if it was flushed."""
        await self.ensure_built()
        raw = await self._redis.get(self._key(phone))
        return SessionState.from_json(orjson.loads(raw)) if raw else None

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

    async def _write(self, state: SessionState, now: dt.datetime) -> None:
        key = self._key(state.phone)
        if not state.open:
            await self._redis.delete(key)
            return
        ttl: int | None = None
        if state.expires_at is not None:
            ttl = max(1, int((state.expires_at + EXPIRY_GRACE - now).total_seconds()))
        await self._redis.set(key, orjson.dumps(state.to_json()), ex=ttl)

    async def rebuild(self) -> int:
        """Fold the whole ``sessions`` topic and store every open session; returns how many."""
        async with self._lock:
            states: dict[str, SessionState] = {}
            envelopes: list[Envelope] = []
            async for batch in read_to_end(self._kafka, [self._topic]):
                envelopes.extend(r.envelope for r in batch if r.envelope is not None)
            states = fold(envelopes)
            now = dt.datetime.now(dt.UTC)
            async for key in self._redis.scan_iter(match=self._prefix + "*"):
                await self._redis.delete(key)
            open_sessions = [s for s in states.values() if s.open]
            for state in open_sessions:
                await self._write(state, now)
            await self._redis.set(self._marker, now.isoformat())
            log.info("session cache rebuilt", events=len(envelopes), open=len(open_sessions))
            return len(open_sessions)

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


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value

"""Where known calls are kept: one Redis key per Retell call id (the I/O shell of
:mod:`ringlog.calls.known`).

The API announces a call when Retell's signed inbound webhook names it; the worker when Retell
answers its create-call; the socket when Retell's get-call confirmed a call nobody announced. A
record lives as long as a call can (ringing, then Retell's longest call) and is then forgotten.
One read per socket; nothing here grows with the number of past calls.
"""

from __future__ import annotations

import datetime as dt

import orjson
import redis.asyncio as aioredis

from ringlog.calls.known import KnownCall

#: How long a call may ring before it is answered (added to the longest call).
RINGING = dt.timedelta(minutes=15)


class CallDirectory:
    """Known calls by Retell call id, in Redis under ``{prefix}known-call:``."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, max_call: dt.timedelta) -> None:
        self._redis = redis
        self._prefix = f"{prefix}known-call:"
        self._ttl = int((max_call + RINGING).total_seconds())

    async def announce(self, call: KnownCall) -> None:
        """Record ``call`` (a later announcement of the same id replaces it)."""
        await self._redis.set(
            self._prefix + call.call_id, orjson.dumps(call.to_json()), ex=self._ttl
        )

    async def get(self, call_id: str) -> KnownCall | None:
        """The record of ``call_id``, or ``None`` if no trusted source announced it lately."""
        raw = await self._redis.get(self._prefix + call_id)
        return KnownCall.from_json(orjson.loads(raw)) if raw else None

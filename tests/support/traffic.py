"""Traffic for rebuild tests: new numbers' sessions and call requests, appended until told to
stop."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from ringlog.schemas import CallRequested, Envelope, SessionProgressed, SessionStarted
from ringlog.streams.producer import LogProducer

#: the numbers handed out in this process: each call of :func:`sessions_and_calls` gets new ones
_NUMBERS = itertools.count()


def sessions_and_calls(batch: int) -> list[Envelope]:
    """``batch`` new numbers' sessions (started, then progressed) and call requests; no number
    is handed out twice in a process (up to ten million), so a projection keyed by number or
    call holds one row for each."""
    out: list[Envelope] = []
    for _ in range(batch):
        token = uuid.uuid4().hex[:10]
        phone = f"+1415{next(_NUMBERS) % 10_000_000:07d}"
        s = {"session_id": f"s-{token}", "phone": phone, "call_ref": f"in_{token}"}
        out.append(Envelope.new(SessionStarted(**s, stage="identity"), source="test"))
        out.append(Envelope.new(SessionProgressed(**s, stage="date"), source="test"))
        request = CallRequested(
            call_ref=f"call-{token}",
            to_number=phone,
            from_number="+14155559876",
            agent_id="agent-test",
        )
        out.append(Envelope.new(request, source="test"))
    return out


async def keep_appending(log: LogProducer, stop: asyncio.Event) -> int:
    """Append five numbers' events every 20 ms until ``stop``; return how many numbers."""
    sent = 0
    while not stop.is_set():
        await log.append_many(sessions_and_calls(5))
        sent += 5
        await asyncio.sleep(0.02)
    return sent

"""Who may open the dialog socket: only calls a trusted source announced, and only so many
sockets from one address.

Retell's custom-LLM socket carries no signature. :class:`TrustedCalls` answers "which call is
this?" from trusted sources only: the :class:`~ringlog.calls.directory.CallDirectory` (calls
announced by Retell's signed inbound webhook or by ringlog's own create-call), else Retell's
get-call API asked with the account's key (a call confirmed there is announced for next time).
:class:`OpenSockets` caps the sockets open at once per client address.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import structlog

from ringlog.adapters.retell import RetellClient, RetellRejected
from ringlog.calls.directory import CallDirectory
from ringlog.calls.known import KnownCall, known_from_call
from ringlog.schemas.retell import MAX_CALL_ID_LENGTH, ref_problem

log = structlog.get_logger("ringlog.dialog")


class TrustedCalls:
    """Looks a socket's call id up in the directory, then with Retell's get-call."""

    def __init__(self, directory: CallDirectory, retell: RetellClient | None) -> None:
        self.directory = directory
        self._retell = retell

    async def lookup(self, call_id: str) -> KnownCall | None:
        """The call ``call_id`` names, or ``None`` when no trusted source knows it as a call
        that may still speak. Raises :class:`~ringlog.errors.RetryableError` when Redis or
        Retell cannot be asked (nothing is known then: the socket is refused for now)."""
        if ref_problem(call_id, MAX_CALL_ID_LENGTH):
            return None
        known = await self.directory.get(call_id)
        if known is not None or self._retell is None:
            return known
        try:
            call = await self._retell.get_call(call_id)
        except RetellRejected as exc:  # 404 for an id Retell never gave, 401 for a bad key
            log.info("get-call refused the socket's call id", status=exc.status_code)
            return None
        known = known_from_call(call)
        if known is not None and known.call_id == call_id:
            await self.directory.announce(known)
            return known
        return None

    async def aclose(self) -> None:
        """Close the Retell client."""
        if self._retell is not None:
            await self._retell.aclose()


class OpenSockets:
    """Dialog sockets open at once, by client address, capped at ``limit`` per address."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def held(self, address: str) -> Iterator[bool]:
        """Count a socket from ``address`` while the block runs; yields whether it is within
        the cap (a socket over it is not counted)."""
        if self._open[address] >= self._limit:
            yield False
            return
        self._open[address] += 1
        try:
            yield True
        finally:
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]

"""How a projection runner retries its target: exponential backoff until success, the
policy's attempt limit, or a stop request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_never,
    wait_exponential,
)
from tenacity.stop import stop_base

from ringlog.projections.base import RetryPolicy


class _StopOn(stop_base):
    """Stop retrying once ``event`` is set."""

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()


def retrying(
    policy: RetryPolicy, stop: asyncio.Event, before_sleep: Callable[[RetryCallState], None]
) -> AsyncRetrying:
    """Retry any exception with exponential backoff; give up (re-raising the last error)
    after ``policy.attempts`` attempts (never when 0) or once ``stop`` is set."""
    give_up = stop_after_attempt(policy.attempts) if policy.attempts else stop_never
    return AsyncRetrying(
        stop=stop_any(give_up, _StopOn(stop)),
        wait=wait_exponential(multiplier=policy.backoff_s, max=policy.backoff_max_s),
        retry=retry_if_exception_type(Exception),
        before_sleep=before_sleep,
        reraise=True,
    )

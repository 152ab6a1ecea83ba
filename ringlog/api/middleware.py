"""ASGI middleware: request-size limit, per-route request metrics, and where a request's
writes landed."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringlog.api.appending import written
from ringlog.api.metrics import ApiMetrics
from ringlog.streams.head import positions_text


class BodyLimit:
    """Answer 413 when a request body exceeds its route's limit (declared or actually sent).

    The limit is ``max_bytes``, or the one given in ``per_prefix`` for paths under that prefix
    (the prefix itself or ``prefix/…``; the longest matching prefix wins), e.g. Retell's
    webhooks, whose bodies carry a whole call's transcript.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_prefix: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        prefixes = (per_prefix or {}).items()
        self._prefixes = sorted(
            ((p.rstrip("/"), limit) for p, limit in prefixes), key=lambda item: -len(item[0])
        )

    def limit_for(self, path: str) -> int:
        """The body limit of requests to ``path``."""
        for prefix, limit in self._prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _too_large(send, max_bytes)
            return
        received = 0
        responded = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not responded:
                await _too_large(send, max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body larger than {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Count requests by route template, method and status; clear log context per request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.count_request(template, scope["method"], str(status))


class WritePositions:
    """Name where a request's appends landed: ``X-Ringlog-Position`` on its response
    (``topic/partition:next_offset``, as reads name theirs), when it appended anything.

    A client that reads through another API process passes it back in ``X-Ringlog-After``
    and that read waits, bounded, until the view holds the write."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        positions: dict[tuple[str, int], int] = {}
        token = written.set(positions)

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start" and positions:
                named_at = (b"x-ringlog-position", positions_text(positions).encode())
                message = {**message, "headers": [*message.get("headers", ()), named_at]}
            await send(message)

        try:
            await self.app(scope, receive, named)
        finally:
            written.reset(token)

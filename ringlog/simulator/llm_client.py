"""Drive one call's custom-LLM WebSocket, as Retell's client side, until the call ends.

The socket I/O around the pure :class:`~ringlog.simulator.dialog.Dialog`: connect to
``{llm_websocket_url}/{call_id}``, feed every text frame to the dialog and send what it
answers, send ``ping_pong`` right away and then every ``ping_interval_s``, and close with 1000
once the dialog has an outcome. When the dialog asks for it (``reconnect_due``) the socket is
dropped without a close frame, as a lost connection is, and opened again for the same call.
Every way the socket can fail becomes an outcome of the dialog; :func:`converse` only raises on
cancellation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ringlog.simulator.dialog import ABNORMAL_CLOSURE, NORMAL_CLOSURE, Dialog

log = structlog.get_logger("ringlog.simulator")

#: Seconds between the simulator's ``ping_pong`` frames (Retell: every couple of seconds).
PING_INTERVAL_S = 2.0
#: The call ends as ``inactivity`` when the server sends nothing for this long.
IDLE_TIMEOUT_S = 30.0
#: Seconds allowed for the socket's opening handshake.
OPEN_TIMEOUT_S = 10.0


def socket_url(base: str, call_id: str) -> str:
    """``{base}/{call_id}``, with any trailing ``/`` on ``base`` ignored."""
    return f"{base.rstrip('/')}/{call_id}"


async def converse(
    url: str,
    dialog: Dialog,
    *,
    ping_interval_s: float = PING_INTERVAL_S,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    open_timeout_s: float = OPEN_TIMEOUT_S,
) -> None:
    """Play ``dialog`` over the socket at ``url``; return once it has an outcome and is closed."""
    while True:
        try:
            async with connect(
                url, open_timeout=open_timeout_s, ping_interval=None, proxy=None, close_timeout=5
            ) as ws:
                pinger = asyncio.create_task(_ping(ws, dialog, ping_interval_s))
                try:
                    await _talk(ws, dialog, idle_timeout_s)
                finally:
                    pinger.cancel()
                    await asyncio.gather(pinger, return_exceptions=True)
        except (OSError, TimeoutError, InvalidURI, InvalidHandshake) as exc:
            log.warning("llm websocket did not open", url=url, error=f"{type(exc).__name__}: {exc}")
            dialog.failed_to_open()
            return
        if not dialog.reconnect_due:
            return
        log.info("llm websocket lost on purpose; opening it again", url=url)
        dialog.reconnected()


async def _talk(ws: ClientConnection, dialog: Dialog, idle_timeout_s: float) -> None:
    """Answer frames until the dialog ends, then close with 1000 (or record the server's
    close); drop the connection without a close frame when the dialog wants a reconnect."""
    try:
        while dialog.outcome is None:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=idle_timeout_s)
            except TimeoutError:
                dialog.fell_silent()
                break
            for frame in dialog.receive(raw):
                await ws.send(_text(frame))
            if dialog.reconnect_due:
                ws.transport.abort()  # a lost connection: the server sees 1006
                await ws.wait_closed()
                return
        await ws.close(code=NORMAL_CLOSURE)
        dialog.closed_by_simulator()
    except ConnectionClosed as exc:
        dialog.closed_by_server(exc.rcvd.code if exc.rcvd is not None else ABNORMAL_CLOSURE)


async def _ping(ws: ClientConnection, dialog: Dialog, interval_s: float) -> None:
    """Send ``ping_pong`` now and every ``interval_s`` until the socket closes or is cancelled."""
    try:
        while dialog.outcome is None:
            await ws.send(_text(dialog.ping(int(time.time() * 1000))))
            await asyncio.sleep(interval_s)
    except ConnectionClosed:
        return


def _text(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()

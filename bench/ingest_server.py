"""The server side of ``bench.ingest``: ringlog's app plus a bare endpoint, one process.

``/bench/bare`` only reads the body and answers 204, so the ratio to
``/v1/webhooks/retell`` is what signature checking, parsing and the acks=all append cost.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import Request, Response

from ringlog import logs
from ringlog.api.app import create_app
from ringlog.config import Settings


def main() -> None:
    """Serve on the port given as the first argument."""
    logs.configure()  # as `ringlog api` does: JSON lines on stderr
    app = create_app(Settings.load())

    @app.post("/bench/bare", status_code=204)
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""A stand-in for Retell's get-call API, for tests that open the dialog socket themselves.

Tests register the call objects Retell would hold; ``GET /v2/get-call/{id}`` answers them (401
without the key, 404 for an unknown id) and counts the lookups. With ``forward_to`` set (a
served simulator's URL), a call it does not hold is asked there.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: the Retell API key the tests' API is configured with (it also signs Retell's webhooks)
RETELL_KEY = "key_retell_test"


class RetellDouble:
    """Retell's call records, served at ``/v2/get-call/{call_id}``."""

    def __init__(self, api_key: str = RETELL_KEY) -> None:
        self.api_key = api_key
        self.calls: dict[str, dict[str, Any]] = {}
        self.lookups: Counter[str] = Counter()
        #: a Retell (the simulator) asked for calls not registered here
        self.forward_to: str | None = None
        self.app = Starlette(routes=[Route("/v2/get-call/{call_id}", self._get_call)])

    def add(self, call: dict[str, Any]) -> None:
        """Retell holds ``call`` (by its ``call_id``)."""
        self.calls[str(call["call_id"])] = call

    async def _get_call(self, request: Request) -> JSONResponse:
        call_id = request.path_params["call_id"]
        self.lookups[call_id] += 1
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"message": "Invalid API key."}, status_code=401)
        call = self.calls.get(call_id)
        if call is None and self.forward_to is not None:
            async with httpx.AsyncClient(base_url=self.forward_to) as http:
                answer = await http.get(request.url.path, headers=request.headers)
            return JSONResponse(answer.json(), status_code=answer.status_code)
        if call is None:
            return JSONResponse({"message": "Call not found."}, status_code=404)
        return JSONResponse(call)

"""The local Retell as a FastAPI app: create-call, get-call, and ``/sim`` inspection routes.

``create_simulator`` is the one factory. Retell's routes need ``Authorization: Bearer <key>``
with ``settings.retell.api_key`` and answer errors as ``{"status": "error", "message": ...}``.
The ``/sim`` routes are for tests and local runs: they show the created calls with every
webhook post attempt, and read or replace the faults in force.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from pydantic import ValidationError

from ringlog import __version__
from ringlog.config import Settings
from ringlog.simulator.faults import Faults
from ringlog.simulator.models import CreatePhoneCall, describe, error
from ringlog.simulator.runtime import Simulator

_FAILURES = {
    429: "Account rate limited, please throttle your requests.",
    500: "Internal server error (injected by the simulator).",
}


def create_simulator(settings: Settings, faults: Faults | None = None) -> FastAPI:
    """Build the simulator app; ``faults`` apply until replaced with ``PUT /sim/faults``.

    The lifespan opens the webhook HTTP client; on shutdown every call still playing is
    cancelled and awaited. ``app.state.simulator`` is the :class:`Simulator` behind the routes.
    Raises ``ValueError`` when ``settings.retell.api_key`` is not set.
    """
    sim = Simulator(settings, faults)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await sim.start()
        try:
            yield
        finally:
            await sim.close()

    app = FastAPI(
        title="ringlog simulator",
        version=__version__,
        summary="A local Retell: creates calls and plays them back as signed webhooks.",
        lifespan=lifespan,
    )
    app.state.simulator = sim

    @app.post("/v2/create-phone-call", status_code=201, response_model=None)
    async def create_phone_call(request: Request) -> Response | dict[str, Any]:
        """Register an outbound call (201 + call object) and play its script in the background.

        401 without the API key; injected 429/500 faults next; 400 for a body that is not a
        valid create-call request. A repeated ``idempotency_key`` (within an hour) returns the
        first call and plays nothing new.
        """
        if not sim.authorized(request.headers.get("authorization")):
            sim.create_requests += 1
            return error(401, "Invalid API key.")
        failure = sim.injected_failure()
        if failure is not None:
            return error(failure, _FAILURES[failure])
        try:
            body = CreatePhoneCall.model_validate(orjson.loads(await request.body()))
        except orjson.JSONDecodeError as exc:
            return error(400, f"Request body is not valid JSON: {exc}")
        except ValidationError as exc:
            return error(400, describe(exc))
        return sim.create(body)

    @app.get("/v2/get-call/{call_id}", response_model=None)
    async def get_call(call_id: str, request: Request) -> Response | dict[str, Any]:
        """The call's current object: registered → ongoing → ended, then with its analysis."""
        if not sim.authorized(request.headers.get("authorization")):
            return error(401, "Invalid API key.")
        record = sim.calls.get(call_id)
        if record is None:
            return error(404, "Call not found.")
        return record.call

    @app.get("/sim/calls")
    async def sim_calls() -> dict[str, Any]:
        """Every create request counted, and each call with its status and post attempts."""
        return {
            "create_requests": sim.create_requests,
            "pending": sim.pending,
            "calls": [record.view() for record in sim.calls.values()],
        }

    @app.get("/sim/faults")
    async def get_faults() -> Faults:
        """The faults in force."""
        return sim.faults

    @app.put("/sim/faults")
    async def put_faults(faults: Faults) -> Faults:
        """Replace the faults for calls created from now on (restarts the 429/500 counts)."""
        sim.replace_faults(faults)
        return sim.faults

    return app

"""The local Retell as a FastAPI app: create-call (phone and web), get-call, and ``/sim`` routes.

``create_simulator`` is the one factory. Retell's routes need ``Authorization: Bearer <key>``
with ``settings.retell.api_key`` and answer errors as ``{"status": "error", "message": ...}``.
The ``/sim`` routes are for tests and local runs: they show the calls with every webhook
post attempt and, for dialog calls, the transcript and socket outcome; they read or replace
the faults and the patient persona in force; and ``POST /sim/inbound`` makes a patient call in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ringlog import __version__
from ringlog.config import Settings
from ringlog.simulator.faults import Faults
from ringlog.simulator.models import (
    CreatePhoneCall,
    CreateWebCall,
    InboundCall,
    describe,
    error,
)
from ringlog.simulator.patient import Persona
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

    @app.post("/v2/create-web-call", status_code=201, response_model=None)
    async def create_web_call(request: Request) -> Response | dict[str, Any]:
        """Register a web call (201 + call object with ``access_token``) and play it at once,
        through the custom-LLM socket when one is set. 401 without the API key; 400 for a
        body that is not a valid create-web-call request."""
        if not sim.authorized(request.headers.get("authorization")):
            return error(401, "Invalid API key.")
        try:
            body = CreateWebCall.model_validate(orjson.loads(await request.body()))
        except orjson.JSONDecodeError as exc:
            return error(400, f"Request body is not valid JSON: {exc}")
        except ValidationError as exc:
            return error(400, describe(exc))
        return sim.create_web_call(body)

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
        """Every create request counted, and each call: status, post attempts, dialog."""
        return {
            "create_requests": sim.create_requests,
            "pending": sim.pending,
            "calls": [record.view() for record in sim.calls.values()],
        }

    @app.get("/sim/calls/{call_id}", response_model=None)
    async def sim_call(call_id: str) -> Response | dict[str, Any]:
        """One call's entry as in ``GET /sim/calls``; 404 for an unknown id."""
        record = sim.calls.get(call_id)
        if record is None:
            return error(404, "Call not found.")
        return record.view()

    @app.post("/sim/inbound", status_code=201, response_model=None)
    async def sim_inbound(body: InboundCall) -> Response | dict[str, Any]:
        """A patient calls in: ``{"call_id"}`` at once; the call plays in the background.

        While it rings the inbound webhook (``{webhook_url}/inbound``) is asked for the call's
        metadata and dynamic variables; then it plays like any call. 422 for persona overrides
        that do not fit the persona.
        """
        try:
            call_id = sim.inbound(body)
        except ValidationError as exc:
            return JSONResponse({"detail": describe(exc)}, status_code=422)
        return {"call_id": call_id}

    @app.get("/sim/persona")
    async def get_persona() -> Persona:
        """The patient persona in force."""
        return sim.persona

    @app.put("/sim/persona")
    async def put_persona(persona: Persona) -> Persona:
        """Replace the patient persona for calls made from now on."""
        sim.replace_persona(persona)
        return sim.persona

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

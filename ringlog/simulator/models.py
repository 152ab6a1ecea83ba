"""What the local Retell accepts and answers: create-call (phone and web) and inbound bodies,
Retell's errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ringlog.simulator.faults import Faults

#: An E.164 phone number: ``+`` then up to 15 digits, no leading zero.
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{1,14}$")]


class CreatePhoneCall(BaseModel):
    """``POST /v2/create-phone-call`` body: the fields Retell documents, nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_number: E164
    to_number: E164
    override_agent_id: str | None = Field(default=None, min_length=1)
    override_agent_version: int | str | None = None
    agent_override: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: dict[str, str] | None = None
    custom_sip_headers: dict[str, str] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    honor_internal_dnc: bool | None = None
    ignore_e164_validation: bool | None = None


class CreateWebCall(BaseModel):
    """``POST /v2/create-web-call`` body: the fields Retell documents, nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_id: str = Field(min_length=1)
    agent_version: int | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: dict[str, str] | None = None


class InboundCall(BaseModel):
    """``POST /sim/inbound`` body: a patient calling ``to_number`` from ``from_number``.

    ``persona`` overrides fields of the persona in force (see
    :class:`~ringlog.simulator.patient.Persona`); ``faults`` replaces the faults in force for
    this call only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_number: E164
    to_number: E164
    persona: dict[str, Any] = Field(default_factory=dict)
    faults: Faults | None = None


def error(status_code: int, message: str) -> JSONResponse:
    """Retell's error answer: ``{"status": "error", "message": ...}``."""
    return JSONResponse({"status": "error", "message": message}, status_code=status_code)


def describe(exc: ValidationError) -> str:
    """A one-line message naming each invalid field, e.g. ``to_number: String should …``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)

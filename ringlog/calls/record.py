"""The call record: one row per call, built from its state (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ringlog.calls.state import CallState


class CallRecord(BaseModel):
    """What staff and analysts read about a finished call."""

    model_config = ConfigDict(frozen=True)

    call_ref: str
    retell_call_id: str | None
    direction: str | None
    from_number: str | None
    to_number: str | None
    agent_id: str | None
    status: str
    connected: bool
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    disconnection_reason: str | None
    summary: str | None
    sentiment: str | None
    successful: bool | None
    cost: float | None
    task_ref: str | None
    patient_ref: str | None


def call_record(state: CallState) -> CallRecord:
    """The record of the call as its state tells it."""
    analysis: dict[str, Any] = state.analysis or {}
    request = state.request
    return CallRecord(
        call_ref=state.call_ref,
        retell_call_id=state.retell_call_id,
        direction=state.direction,
        from_number=state.from_number,
        to_number=state.to_number,
        agent_id=state.agent_id,
        status=state.phase,
        connected=state.connected,
        started_at=state.started_at,
        ended_at=state.ended_at,
        duration_ms=state.duration_ms,
        disconnection_reason=state.disconnection_reason,
        summary=analysis.get("call_summary"),
        sentiment=analysis.get("user_sentiment"),
        successful=analysis.get("call_successful"),
        cost=_combined_cost(state.cost),
        task_ref=request.task_ref if request else None,
        patient_ref=request.patient_ref if request else None,
    )


def _combined_cost(cost: dict[str, Any] | None) -> float | None:
    value = (cost or {}).get("combined_cost")
    return float(value) if isinstance(value, int | float) else None

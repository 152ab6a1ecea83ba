"""What a call's state still owes the world: ABT events, the call record.

ABT follows the outbound flow's tracking contract in a fixed order, each step waiting for the
one before, so duplicates and reordered webhooks can never reorder the ``abt`` topic:

1. ``voice_call_initiated`` once ringlog placed the call (``call.dispatched``);
2. ``call_started`` once Retell said the call connected (never for dial failures);
3. ``call_completed`` once the call record is stored (``call.recorded``, which the processor
   appends only after the write succeeded).

Only calls ringlog placed itself (a ``call.requested`` exists) are tracked. ABT ids derive
from the call ref and the activity, so a replay that owes nothing emits nothing.
"""

from __future__ import annotations

from ringlog.calls.state import CallState
from ringlog.schemas.abt import AbtEvent, AbtName, abt_id_for

ABT_ORDER: tuple[AbtName, ...] = ("voice_call_initiated", "call_started", "call_completed")


def abt_owed(state: CallState) -> list[AbtEvent]:
    """The ABT events this call has earned but not yet emitted, in order."""
    if state.request is None:
        return []
    earned = {
        "voice_call_initiated": state.dispatch == "dispatched",
        "call_started": state.connected,
        "call_completed": state.recorded and state.connected,
    }
    owed: list[AbtEvent] = []
    for name in ABT_ORDER:
        if not earned[name]:
            break
        if name not in state.abt_emitted:
            owed.append(_abt(state, name))
    return owed


def record_owed(state: CallState) -> bool:
    """Whether the call's record must be written: Retell analysed it and it is not stored yet."""
    return state.analyzed and not state.recorded and state.retell_call_id is not None


def _abt(state: CallState, name: AbtName) -> AbtEvent:
    attributes = {"retell_call_id": state.retell_call_id or ""}
    if state.request is not None and state.request.task_ref:
        attributes["task_ref"] = state.request.task_ref
    if name == "call_completed" and state.disconnection_reason:
        attributes["disconnection_reason"] = state.disconnection_reason
    return AbtEvent(
        abt_id=abt_id_for(state.call_ref, name),
        name=name,
        call_ref=state.call_ref,
        retell_call_id=state.retell_call_id,
        attributes=attributes,
    )

"""One rule names every Retell call (:func:`ringlog.schemas.retell.call_ref_for`): the
call-event webhooks, the inbound webhook, the dialog socket and the CRM's direction agree."""

from __future__ import annotations

from typing import Any

import pytest

from ringlog.calls.known import known_from_call
from ringlog.projections.crm.rows import direction
from ringlog.schemas import RetellCallEnded, RetellCallInbound, SessionStarted
from ringlog.schemas.retell import (
    MINTED_REF_PREFIX,
    call_ref_for,
    is_inbound_ref,
    mint_call_ref,
)
from ringlog.simulator.dialog_calls import answered_inbound, inbound_request
from tests.support.examples import REF, RETELL_ID, retell_call

CALLER, CLINIC = "+14155550123", "+14155559876"


def webhook_ref(call: dict[str, Any]) -> str:
    """The ref the call-event webhook route keys the event by."""
    body = {"event": "call_ended", "call": call}
    return RetellCallEnded.from_body(body).partition_key()


def dialog_ref(call: dict[str, Any]) -> str:
    """The ref the dialog socket serves the call under: that of the call's known record (as
    get-call or create-call describe the call)."""
    known = known_from_call({**call, "call_status": "ongoing"})
    assert known is not None
    return known.call_ref


def inbound_answer(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What the inbound webhook route does: the ref it keys the ringing by, and its answer."""
    ref = RetellCallInbound.from_body(body).partition_key()
    return ref, {"call_inbound": {"metadata": {"call_ref": ref}}}


# -- the rule ---------------------------------------------------------------------------------


def test_the_call_ref_in_metadata_wins() -> None:
    assert call_ref_for("c1", {"call_ref": "call_01HZX3"}) == "call_01HZX3"
    assert call_ref_for(None, {"call_ref": "in_0190"}) == "in_0190"


@pytest.mark.parametrize("metadata", [None, {}, {"call_ref": ""}, {"call_ref": 7}, "call_x"])
def test_without_a_usable_call_ref_the_call_id_names_the_call(metadata: object) -> None:
    assert call_ref_for("c1", metadata) == "retell:c1"


def test_without_call_ref_or_call_id_the_ref_is_minted() -> None:
    assert call_ref_for(None, mint=lambda: "in_abc") == "in_abc"
    assert call_ref_for("", {}, mint=lambda: "in_abc") == "in_abc"
    with pytest.raises(ValueError, match="minted"):
        call_ref_for(None)


def test_minted_refs_are_fresh_and_carry_no_number() -> None:
    first, second = mint_call_ref(), mint_call_ref()
    assert first != second
    assert first.startswith(MINTED_REF_PREFIX) and len(first) == len(MINTED_REF_PREFIX) + 32


# -- the paths agree ----------------------------------------------------------------------------


def test_an_outbound_call_is_named_by_ringlog_on_every_path() -> None:
    call = retell_call("call_ended")
    assert webhook_ref(call) == dialog_ref(call) == REF
    assert direction(REF) == "outbound"


def test_a_call_without_metadata_is_named_by_its_call_id_on_every_path() -> None:
    call = retell_call("call_ended")
    del call["metadata"]
    assert webhook_ref(call) == dialog_ref(call) == f"retell:{RETELL_ID}"
    call["metadata"] = {"crm_id": "123"}  # metadata without a call ref
    assert webhook_ref(call) == dialog_ref(call) == f"retell:{RETELL_ID}"


@pytest.mark.parametrize("announced_id", [True, False])
def test_an_inbound_call_gets_one_ref_from_ringing_to_dialog(announced_id: bool) -> None:
    """The inbound webhook names the call (``retell:<call_id>``, or ``in_<hex>`` when Retell
    gave no call id); Retell echoes the answer's metadata, so the later webhooks and the
    dialog socket name it alike, and the CRM sees an inbound call."""
    call = retell_call("call_ended") | {
        "direction": "inbound",
        "from_number": CALLER,
        "to_number": CLINIC,
    }
    del call["metadata"]
    body = inbound_request(call | {"agent_id": "agent_flu"})
    if not announced_id:
        del body["call_inbound"]["call_id"]
    ref, answer = inbound_answer(body)
    assert ref == f"retell:{RETELL_ID}" if announced_id else ref.startswith("in_")
    assert CALLER not in ref
    answered = answered_inbound(call, answer)
    assert webhook_ref(answered) == dialog_ref(answered) == ref
    assert is_inbound_ref(ref) and direction(ref) == "inbound"


def test_two_inbound_calls_from_one_number_get_two_refs() -> None:
    body = {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": CLINIC}}
    first, _ = inbound_answer(body)
    second, _ = inbound_answer(body)
    assert first != second


@pytest.mark.parametrize(
    "number", ["+14155550123", "+12345", "+14155550123\n", "14155550123", "+04155550123", ""]
)
def test_a_known_call_s_patient_number_is_one_its_session_events_accept(number: str) -> None:
    """The dialog keys a session by the known call's number: a number the session events
    refuse (too short, a trailing newline, no +) is no number, and the call gets a dialog
    without a number-keyed session."""
    call = {"call_id": RETELL_ID, "direction": "inbound", "from_number": number}
    known = known_from_call({**call, "call_status": "ongoing"})
    assert known is not None
    if known.phone:
        SessionStarted(session_id="s", phone=known.phone, call_ref=REF, stage="identity")
    assert known.phone == (number if number == "+14155550123" else "")

"""Hypothesis strategies and builders shared by the schema tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ringlog.schemas.retell import RetellCall
from tests.support.examples import retell_call

#: any JSON value a Retell body might carry (64-bit integers, finite floats, nesting)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: extra top-level fields for Retell's call object (names may collide with known ones)
EXTRA_CALL_FIELDS = st.dictionaries(st.text(min_size=1, max_size=12), JSON, max_size=4)


def call_ended_with(extra: dict[str, Any]) -> dict[str, Any]:
    """A ``call_ended`` body whose call object also carries the fields of ``extra`` that
    ringlog does not model."""
    known = set(RetellCall.__struct_fields__) | set(retell_call("call_ended"))
    call = {k: v for k, v in extra.items() if k not in known}
    return {"event": "call_ended", "call": retell_call("call_ended") | call}

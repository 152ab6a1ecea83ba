"""The committed JSON Schemas guard replay from offset 0 (BACKWARD_TRANSITIVE)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringlog.schemas import REGISTRY
from ringlog.schemas.base import PHONE_PATTERN, EventModel, PhoneNumber
from ringlog.schemas.compat import backward_problems
from ringlog.schemas.registry import Registry
from ringlog.schemas.retell import RetellCallEnded
from ringlog.schemas.snapshots import (
    SNAPSHOT_DIR,
    check,
    contract_schema,
    export,
    load_snapshots,
)


def test_current_contract_reads_every_committed_revision() -> None:
    """No registered model has changed in a way older events could not be read."""
    assert check(REGISTRY, SNAPSHOT_DIR) == []


def test_every_readable_version_has_a_committed_snapshot() -> None:
    """Each type has a snapshot file holding every version it can read, Retell v1 included."""
    committed = load_snapshots(SNAPSHOT_DIR)
    for model in REGISTRY.models():
        for version in REGISTRY.versions(model.event_type):
            assert committed.get((model.event_type, version)), (model.event_type, version)
        path = SNAPSHOT_DIR / f"{model.event_type}.json"
        assert json.loads(path.read_text())["type"] == model.event_type


class V1(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    call_ref: str
    note: str | None = None
    status: str = "new"


class AddsOptional(V1, kw_only=True):
    retries: int = 0


class AddsRequired(V1, kw_only=True):
    retries: int


class DropsField(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    call_ref: str
    status: str = "new"


class NarrowsType(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    call_ref: int
    note: str | None = None
    status: str = "new"


class Tolerant(msgspec.Struct, forbid_unknown_fields=False):
    call_ref: str


class Required(V1, kw_only=True):
    note: str


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    a: int


class InnerMore(Inner):
    b: int


class Old(msgspec.Struct):
    inner: Inner
    tags: dict[str, Any]
    items: list[str]
    ref: Annotated[str, msgspec.Meta(max_length=128)]


class New(msgspec.Struct):
    inner: InnerMore
    tags: dict[str, str]
    items: list[int]
    ref: Annotated[str, msgspec.Meta(max_length=64)]


class Part(msgspec.Struct):  # tolerant, as Retell's parts
    at: datetime | None = None


class Whole(msgspec.Struct, forbid_unknown_fields=True):
    phone: PhoneNumber
    when: datetime
    parts: list[Part] | None = None


def schema(model: type[Any]) -> dict[str, Any]:
    """The JSON Schema the contract commits for ``model`` (a msgspec Struct)."""
    return contract_schema(model)


def test_contract_schema_has_the_committed_shape() -> None:
    """Root unwrapped, tolerant Structs open, strict ones closed, phone ``$``, date-times."""
    contract = schema(Whole)
    assert "$ref" not in contract and contract["title"] == "Whole"
    assert contract["additionalProperties"] is False
    assert list(contract["$defs"]) == ["Part"]  # the root is not repeated under $defs
    assert contract["$defs"]["Part"]["additionalProperties"] is True
    assert contract["properties"]["phone"]["pattern"] == PHONE_PATTERN
    assert contract["properties"]["when"]["format"] == "date-time"
    at = contract["$defs"]["Part"]["properties"]["at"]["anyOf"]
    assert {"type": "string", "format": "date-time"} in at
    assert "$defs" not in schema(V1)


def test_contract_schema_is_pure() -> None:
    """Each call gives an equal, fresh, JSON-plain dict; msgspec's own output is unchanged."""
    raw = msgspec.json.schema(Whole)
    first = schema(Whole)
    first["$defs"]["Part"]["additionalProperties"] = False
    assert schema(Whole) != first and msgspec.json.schema(Whole) == raw
    assert schema(Whole) == json.loads(json.dumps(schema(Whole)))


def test_retell_bodies_are_open_at_every_level() -> None:
    """Retell's webhook body and its nested parts keep unknown fields, so they are open."""
    contract = schema(RetellCallEnded)
    assert contract["additionalProperties"] is True
    for name in ("RetellCall", "Utterance", "CallAnalysis"):
        assert contract["$defs"][name]["additionalProperties"] is True, name


def test_adding_an_optional_field_is_compatible() -> None:
    """A new field with a default reads old events."""
    assert backward_problems(schema(AddsOptional), schema(V1)) == []


def test_adding_a_required_field_is_detected() -> None:
    """Old events lack a newly required field."""
    problems = backward_problems(schema(AddsRequired), schema(V1))
    assert problems == [
        "$.retries: field 'retries' is required by the reader but absent in the writer"
    ]


def test_dropping_a_field_from_a_strict_model_is_detected() -> None:
    """Old events carry a field a forbid-extra reader no longer accepts."""
    problems = backward_problems(schema(DropsField), schema(V1))
    assert any("'note'" in p and "forbids unknown fields" in p for p in problems)


def test_dropping_a_field_from_a_tolerant_model_is_compatible() -> None:
    """A reader that ignores unknown fields still reads events carrying the dropped field."""
    assert backward_problems(schema(Tolerant), schema(V1)) == []


def test_narrowing_a_type_is_detected() -> None:
    """A string field turned integer cannot read old strings."""
    problems = backward_problems(schema(NarrowsType), schema(V1))
    assert any("call_ref" in p and "type" in p for p in problems)


def test_making_an_optional_field_required_is_detected() -> None:
    """Old events may lack the field or hold null in it."""
    problems = backward_problems(schema(Required), schema(V1))
    assert any("'note' is required by the reader but optional" in p for p in problems)
    assert any("null" in p for p in problems)


def test_enum_narrowing_detected_and_widening_accepted() -> None:
    """Dropping a literal value breaks old events; adding one does not."""

    two = msgspec.defstruct("Two", [("status", Literal["new", "done"])])
    three = msgspec.defstruct("Three", [("status", Literal["new", "done", "failed"])])
    free = msgspec.defstruct("Free", [("status", str)])
    assert backward_problems(schema(three), schema(two)) == []
    assert backward_problems(schema(free), schema(two)) == []
    assert backward_problems(schema(two), schema(three)) == [
        "$.status: reader no longer accepts ['failed']"
    ]
    assert backward_problems(schema(two), schema(free))


def test_int_widened_to_float_is_compatible() -> None:
    """A reader of numbers reads integers written before, not the other way round."""

    int_ = msgspec.defstruct("Int", [("n", int)])
    num = msgspec.defstruct("Num", [("n", float)])
    assert backward_problems(schema(num), schema(int_)) == []
    assert backward_problems(schema(int_), schema(num))


def test_nested_and_collection_changes_are_detected() -> None:
    """Changes inside nested models, dict values, list items and bounds are found."""
    problems = backward_problems(schema(New), schema(Old))
    assert [p.split(":")[0] for p in problems] == ["$.inner.b", "$.tags.*", "$.items[]", "$.ref"]
    assert backward_problems(schema(Old), schema(Old)) == []


def test_union_narrowing_is_detected_and_widening_accepted() -> None:
    """Dropping a member of a union breaks old events; adding one does not."""

    narrow = msgspec.defstruct("Narrow", [("v", int)])
    wide = msgspec.defstruct("Wide", [("v", int | str)])
    assert backward_problems(schema(wide), schema(narrow)) == []
    assert backward_problems(schema(narrow), schema(wide))


@pytest.mark.parametrize("model", list(REGISTRY.models()), ids=lambda m: m.event_type)
def test_every_model_reads_itself(model: type[EventModel]) -> None:
    """The comparison reports nothing for an unchanged schema (no false alarms on real models)."""
    assert backward_problems(schema(model), schema(model)) == []


VALUES = st.sets(st.sampled_from(["new", "queued", "dialing", "done", "failed", "x"]), min_size=1)


@given(reader_values=VALUES, writer_values=VALUES)
def test_literal_compatibility_is_set_inclusion(
    reader_values: set[str], writer_values: set[str]
) -> None:
    """A Literal reader reads a Literal writer exactly when it accepts every written value."""
    reader = msgspec.defstruct("R", [("status", Literal[tuple(sorted(reader_values))])])
    writer = msgspec.defstruct("W", [("status", Literal[tuple(sorted(writer_values))])])
    compatible = backward_problems(schema(reader), schema(writer)) == []
    assert compatible == (writer_values <= reader_values)


def _thing(version: int = 1, *fields: tuple[Any, ...]) -> type[EventModel]:
    """A made-up event model ``test.thing`` at ``version`` with ``ref`` plus ``fields``
    (``(name, type)`` or ``(name, type, default)``)."""
    namespace = {"event_type": "test.thing", "schema_version": version, "topic": "calls"}
    model = msgspec.defstruct(
        "Thing", [("ref", str), *fields], bases=(EventModel,), namespace=namespace
    )
    return cast(type[EventModel], model)


def _registry(model: type[EventModel]) -> Registry:
    registry = Registry()
    registry.register(model)
    return registry


def test_check_catches_a_breaking_change_against_an_old_revision(tmp_path: Path) -> None:
    """Export, change the model incompatibly under the same version: check names the field."""
    assert export(_registry(_thing()), tmp_path) == ["test.thing v1 (revision 0)"]
    assert check(_registry(_thing()), tmp_path) == []
    problems = check(_registry(_thing(1, ("must_have", str))), tmp_path)
    assert any("cannot read revision 0" in p and "must_have" in p for p in problems)


def test_breaking_an_older_revision_is_caught_transitively(tmp_path: Path) -> None:
    """A change compatible with the latest revision but not an earlier one still fails."""
    export(_registry(_thing(1, ("note", str | None, None))), tmp_path)  # revision 0 wrote `note`
    dropped = _registry(_thing(1, ("extra", str | None, None)))  # revision 1 no longer has it
    assert export(dropped, tmp_path) == ["test.thing v1 (revision 1)"]
    problems = check(dropped, tmp_path)
    assert any("revision 0" in p and "note" in p for p in problems)
    assert not any("revision 1" in p for p in problems)


def test_export_appends_and_never_rewrites(tmp_path: Path) -> None:
    """A compatible change needs export; export appends a revision and keeps the old one."""
    before = _registry(_thing())
    after = _registry(_thing(1, ("extra", str | None, None)))
    export(before, tmp_path)
    revision0 = load_snapshots(tmp_path)[("test.thing", 1)][0]
    assert any("ringlog schemas export" in p for p in check(after, tmp_path))
    assert export(after, tmp_path) == ["test.thing v1 (revision 1)"]
    assert export(after, tmp_path) == []
    history = load_snapshots(tmp_path)[("test.thing", 1)]
    assert history[0] == revision0 and len(history) == 2
    assert check(after, tmp_path) == []
    assert check(before, tmp_path)  # the old model cannot claim the newer revision as current


def test_missing_snapshot_and_removed_type_are_reported(tmp_path: Path) -> None:
    """A type with no snapshot, or a committed type no longer registered, is a problem."""
    assert check(_registry(_thing()), tmp_path) == [
        "test.thing v1: no snapshot; run `ringlog schemas export`"
    ]
    export(_registry(_thing()), tmp_path)
    assert any("no longer registered" in p for p in check(Registry(), tmp_path))


def test_an_old_version_needs_an_upcaster_path(tmp_path: Path) -> None:
    """After a version bump, committed v1 events need an upcaster to v2."""
    export(_registry(_thing(1)), tmp_path)
    bumped = _registry(_thing(2, ("count", int)))
    export(bumped, tmp_path)
    assert check(bumped, tmp_path) == ["test.thing v1: no upcaster path to the current version"]
    bumped.upcaster("test.thing", 1)(lambda p: p | {"count": 0})
    assert check(bumped, tmp_path) == []


def test_a_legacy_version_without_a_snapshot_is_reported(tmp_path: Path) -> None:
    """An upcaster input with neither a committed snapshot nor a legacy schema is a problem."""
    registry = _registry(_thing(2))
    registry.upcaster("test.thing", 1)(lambda p: p)
    export(registry, tmp_path)
    problems = check(registry, tmp_path)
    assert any("readable through upcasters but has no snapshot" in p for p in problems)
    legacy = {"type": "object", "properties": {"id": {"type": "string"}}}
    with_schema = _registry(_thing(2))
    with_schema.upcaster("test.thing", 1, legacy_schema=legacy)(lambda p: p)
    assert export(with_schema, tmp_path) == ["test.thing v1 (revision 0)"]
    assert check(with_schema, tmp_path) == []


def test_a_malformed_snapshot_names_its_file(tmp_path: Path) -> None:
    """A broken snapshot file is reported with its path, not as a bare JSON error."""
    (tmp_path / "test.thing.json").write_text('{"type": "test.thing"}')
    with pytest.raises(ValueError, match=r"test\.thing\.json"):
        load_snapshots(tmp_path)

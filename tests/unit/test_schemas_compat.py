"""The committed JSON Schemas guard replay from offset 0 (BACKWARD_TRANSITIVE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, create_model

from ringlog.schemas import REGISTRY
from ringlog.schemas.base import EventModel
from ringlog.schemas.compat import backward_problems
from ringlog.schemas.registry import Registry
from ringlog.schemas.snapshots import SNAPSHOT_DIR, check, export, load_snapshots


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


class V1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_ref: str
    note: str | None = None
    status: str = "new"


class AddsOptional(V1):
    retries: int = 0


class AddsRequired(V1):
    retries: int


class DropsField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_ref: str
    status: str = "new"


class NarrowsType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_ref: int
    note: str | None = None
    status: str = "new"


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema pydantic emits for ``model`` (validation mode)."""
    return model.model_json_schema()


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
    """A reader that allows extra fields still reads events carrying the dropped field."""

    class Tolerant(BaseModel):
        model_config = ConfigDict(extra="allow")
        call_ref: str

    assert backward_problems(schema(Tolerant), schema(V1)) == []


def test_narrowing_a_type_is_detected() -> None:
    """A string field turned integer cannot read old strings."""
    problems = backward_problems(schema(NarrowsType), schema(V1))
    assert any("call_ref" in p and "type" in p for p in problems)


def test_making_an_optional_field_required_is_detected() -> None:
    """Old events may lack the field or hold null in it."""

    class Required(V1):
        note: str  # type: ignore[assignment]

    problems = backward_problems(schema(Required), schema(V1))
    assert any("'note' is required by the reader but optional" in p for p in problems)
    assert any("null" in p for p in problems)


def test_enum_narrowing_detected_and_widening_accepted() -> None:
    """Dropping a literal value breaks old events; adding one does not."""

    class Two(BaseModel):
        status: Literal["new", "done"]

    class Three(BaseModel):
        status: Literal["new", "done", "failed"]

    class Free(BaseModel):
        status: str

    assert backward_problems(schema(Three), schema(Two)) == []
    assert backward_problems(schema(Free), schema(Two)) == []
    assert backward_problems(schema(Two), schema(Three)) == [
        "$.status: reader no longer accepts ['failed']"
    ]
    assert backward_problems(schema(Two), schema(Free))


def test_int_widened_to_float_is_compatible() -> None:
    """A reader of numbers reads integers written before, not the other way round."""

    class Int(BaseModel):
        n: int

    class Num(BaseModel):
        n: float

    assert backward_problems(schema(Num), schema(Int)) == []
    assert backward_problems(schema(Int), schema(Num))


def test_nested_and_collection_changes_are_detected() -> None:
    """Changes inside nested models, dict values, list items and bounds are found."""

    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: int

    class InnerMore(Inner):
        b: int

    class Old(BaseModel):
        inner: Inner
        tags: dict[str, Any]
        items: list[str]
        ref: str = Field(max_length=128)

    class New(BaseModel):
        inner: InnerMore
        tags: dict[str, str]
        items: list[int]
        ref: str = Field(max_length=64)

    problems = backward_problems(schema(New), schema(Old))
    assert [p.split(":")[0] for p in problems] == ["$.inner.b", "$.tags.*", "$.items[]", "$.ref"]
    assert backward_problems(schema(Old), schema(Old)) == []


def test_union_narrowing_is_detected_and_widening_accepted() -> None:
    """Dropping a member of a union breaks old events; adding one does not."""

    class Narrow(BaseModel):
        v: int

    class Wide(BaseModel):
        v: int | str

    assert backward_problems(schema(Wide), schema(Narrow)) == []
    assert backward_problems(schema(Narrow), schema(Wide))


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
    reader = create_model("R", status=(Literal[tuple(sorted(reader_values))], ...))
    writer = create_model("W", status=(Literal[tuple(sorted(writer_values))], ...))
    compatible = backward_problems(schema(reader), schema(writer)) == []
    assert compatible == (writer_values <= reader_values)


def _thing(version: int = 1, **fields: Any) -> type[EventModel]:
    """A made-up event model ``test.thing`` at ``version`` with ``ref`` plus ``fields``."""
    base = create_model(
        "Thing",
        __base__=EventModel,
        ref=(str, ...),
        **fields,
    )
    base.event_type = "test.thing"  # type: ignore[misc]
    base.schema_version = version  # type: ignore[misc]
    base.topic = "calls"  # type: ignore[misc]
    return base


def _registry(model: type[EventModel]) -> Registry:
    registry = Registry()
    registry.register(model)
    return registry


def test_check_catches_a_breaking_change_against_an_old_revision(tmp_path: Path) -> None:
    """Export, change the model incompatibly under the same version: check names the field."""
    assert export(_registry(_thing()), tmp_path) == ["test.thing v1 (revision 0)"]
    assert check(_registry(_thing()), tmp_path) == []
    problems = check(_registry(_thing(must_have=(str, ...))), tmp_path)
    assert any("cannot read revision 0" in p and "must_have" in p for p in problems)


def test_breaking_an_older_revision_is_caught_transitively(tmp_path: Path) -> None:
    """A change compatible with the latest revision but not an earlier one still fails."""
    export(_registry(_thing(note=(str | None, None))), tmp_path)  # revision 0 wrote `note`
    dropped = _registry(_thing(extra=(str | None, None)))  # revision 1 no longer has it
    assert export(dropped, tmp_path) == ["test.thing v1 (revision 1)"]
    problems = check(dropped, tmp_path)
    assert any("revision 0" in p and "note" in p for p in problems)
    assert not any("revision 1" in p for p in problems)


def test_export_appends_and_never_rewrites(tmp_path: Path) -> None:
    """A compatible change needs export; export appends a revision and keeps the old one."""
    before = _registry(_thing())
    after = _registry(_thing(extra=(str | None, None)))
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
    bumped = _registry(_thing(2, count=(int, ...)))
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

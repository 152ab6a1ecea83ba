"""The committed JSON Schemas guard replay from offset 0 (BACKWARD_TRANSITIVE)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ringlog.schemas import REGISTRY
from ringlog.schemas.base import EventModel
from ringlog.schemas.compat import backward_problems
from ringlog.schemas.registry import Registry
from ringlog.schemas.snapshots import SNAPSHOT_DIR, check, export


def test_current_contract_reads_every_committed_revision() -> None:
    """No registered model has changed in a way older events could not be read."""
    assert check(REGISTRY, SNAPSHOT_DIR) == []


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


class WithEnum(BaseModel):
    status: str


def schema(model: type[BaseModel]) -> dict[str, object]:
    return model.model_json_schema()


def test_adding_an_optional_field_is_compatible() -> None:
    """A new field with a default reads old events."""
    assert backward_problems(schema(AddsOptional), schema(V1)) == []


def test_adding_a_required_field_is_detected() -> None:
    """Old events lack a newly required field."""
    problems = backward_problems(schema(AddsRequired), schema(V1))
    assert any("retries" in p and "required" in p for p in problems)


def test_dropping_a_field_from_a_strict_model_is_detected() -> None:
    """Old events carry a field a forbid-extra reader no longer accepts."""
    problems = backward_problems(schema(DropsField), schema(V1))
    assert any("note" in p for p in problems)


def test_narrowing_a_type_is_detected() -> None:
    """A string field turned integer cannot read old strings."""
    problems = backward_problems(schema(NarrowsType), schema(V1))
    assert any("call_ref" in p and "type" in p for p in problems)


def test_enum_narrowing_detected_and_widening_accepted() -> None:
    """Dropping a literal value breaks old events; adding one does not."""
    from typing import Literal

    class Two(BaseModel):
        status: Literal["new", "done"]

    class Three(BaseModel):
        status: Literal["new", "done", "failed"]

    assert backward_problems(schema(Three), schema(Two)) == []
    assert backward_problems(schema(Two), schema(Three))
    assert backward_problems(schema(Two), schema(WithEnum))


def test_int_widened_to_float_is_compatible() -> None:
    """A reader of numbers reads integers written before."""

    class Int(BaseModel):
        n: int

    class Num(BaseModel):
        n: float

    assert backward_problems(schema(Num), schema(Int)) == []
    assert backward_problems(schema(Int), schema(Num))


def test_check_catches_a_breaking_change_against_an_old_revision(tmp_path: Path) -> None:
    """Export v1, change the model incompatibly under the same version: check reports it."""

    class Before(EventModel):
        event_type: ClassVar[str] = "test.thing"
        schema_version: ClassVar[int] = 1
        topic: ClassVar[str] = "calls"
        ref: str

    class After(EventModel):
        event_type: ClassVar[str] = "test.thing"
        schema_version: ClassVar[int] = 1
        topic: ClassVar[str] = "calls"
        ref: str
        must_have: str

    before, after = Registry(), Registry()
    before.register(Before)
    after.register(After)
    assert export(before, tmp_path) == ["test.thing v1 (revision 0)"]
    assert check(before, tmp_path) == []
    problems = check(after, tmp_path)
    assert problems and "must_have" in problems[0]


def test_check_asks_for_export_after_a_compatible_change(tmp_path: Path) -> None:
    """A compatible change still needs its snapshot committed; export appends a revision."""

    class Before(EventModel):
        event_type: ClassVar[str] = "test.other"
        schema_version: ClassVar[int] = 1
        topic: ClassVar[str] = "calls"
        ref: str

    class After(Before):
        extra: str | None = None

    before, after = Registry(), Registry()
    before.register(Before)
    after.register(After)
    export(before, tmp_path)
    assert any("export" in p for p in check(after, tmp_path))
    assert export(after, tmp_path) == ["test.other v1 (revision 1)"]
    assert check(after, tmp_path) == []
    assert check(before, tmp_path)  # the old model cannot claim the newer revision as current


def test_removed_type_is_reported(tmp_path: Path) -> None:
    """Dropping an event type that has committed snapshots would strand its old events."""

    class Gone(EventModel):
        event_type: ClassVar[str] = "test.gone"
        schema_version: ClassVar[int] = 1
        topic: ClassVar[str] = "calls"
        ref: str

    with_it = Registry()
    with_it.register(Gone)
    export(with_it, tmp_path)
    assert any("no longer registered" in p for p in check(Registry(), tmp_path))

"""Is a reader schema able to read what a writer schema allowed? (BACKWARD compatibility)

Works on the JSON Schemas pydantic emits: ``$ref``/``$defs``, ``anyOf``/``oneOf`` for optional
and union fields, single-item ``allOf``, ``enum``/``const`` for literals, objects with
``required`` and ``additionalProperties``, arrays, ``format``, ``pattern`` and the numeric,
length and size bounds. Every difference that could let an old event fail validation under
the new model is reported as a readable problem; the check is conservative (it may report a
change that happens to be harmless, e.g. a different but equivalent ``pattern``).

Pydantic models that ignore unknown fields omit ``additionalProperties``; since they never
write unknown fields, a writer object with declared properties and no ``additionalProperties``
is treated as closed. ``additionalProperties: true`` (``extra="allow"``, ``dict[str, Any]``)
or an object with no declared properties is open.
"""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]
_ANY: Schema = {}
_NOTES = frozenset({"title", "description", "default", "examples", "deprecated"})
# bound -> True when the reader must not be tighter from below (min) / above (max)
_LOWER = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_UPPER = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")


def backward_problems(reader: Schema, writer: Schema) -> list[str]:
    """Return why data valid under ``writer`` may be invalid under ``reader`` (empty: none).

    Each problem names the path (``$.call.metadata``) and what changed, e.g. ``"$.x: field
    'x' is required by the reader but optional in the writer"``.
    """
    ctx = _Context(reader.get("$defs", {}), writer.get("$defs", {}))
    return ctx.compare(reader, writer, "$")


class _Context:
    def __init__(self, rdefs: dict[str, Schema], wdefs: dict[str, Schema]) -> None:
        self.rdefs, self.wdefs = rdefs, wdefs
        # pairs of $refs being compared, so recursive models do not recurse forever
        self.active: set[tuple[str | None, str | None]] = set()

    def compare(self, r: Any, w: Any, at: str) -> list[str]:
        """Problems reading data valid under writer schema ``w`` with reader schema ``r``."""
        refs = (_ref(r), _ref(w))
        if refs != (None, None):
            if refs in self.active:
                return []
            self.active.add(refs)
        try:
            return self._compare(_resolve(r, self.rdefs), _resolve(w, self.wdefs), at)
        finally:
            self.active.discard(refs)

    def _compare(self, r: Schema, w: Schema, at: str) -> list[str]:
        if not set(r) - _NOTES:
            return []  # the reader accepts anything here
        w_branches = _branches(w)
        if w_branches is not None:  # every kind of value the writer wrote must still be read
            return [p for b in w_branches for p in self.compare(r, b, at)]
        r_branches = _branches(r)
        if r_branches is not None:
            if any(not self.compare(b, w, at) for b in r_branches):
                return []
            return [f"{at}: no branch of the reader's union accepts the writer's {_show(w)}"]

        r_values, w_values = _values(r), _values(w)
        if r_values is not None:
            if w_values is None:
                return [f"{at}: reader accepts only {r_values}, writer allowed any {_show(w)}"]
            dropped = [v for v in w_values if v not in r_values]
            return [f"{at}: reader no longer accepts {dropped}"] if dropped else []

        r_types, w_types = _types(r), _types(w)
        if r_types is not None:
            if w_types is None and w_values is None:
                return [f"{at}: reader requires type {sorted(r_types)}, writer allowed anything"]
            accepted = r_types | ({"integer"} if "number" in r_types else set())
            written = w_types or {_json_type(v) for v in w_values or []}
            if not written <= accepted:
                return [f"{at}: type {sorted(written)} written, reader accepts {sorted(r_types)}"]
        problems = _constraints(r, w, at)
        if "object" in (r_types or set()) or "properties" in r:
            problems += self._objects(r, w, at)
        if "array" in (r_types or set()):
            problems += self.compare(r.get("items", _ANY), w.get("items", _ANY), f"{at}[]")
        return problems

    def _objects(self, r: Schema, w: Schema, at: str) -> list[str]:
        problems = []
        r_props: dict[str, Schema] = r.get("properties", {})
        w_props: dict[str, Schema] = w.get("properties", {})
        w_required = set(w.get("required", []))
        for name in r.get("required", []):
            if name not in w_required:
                state = "optional" if name in w_props else "absent"
                problems.append(
                    f"{at}.{name}: field {name!r} is required by the reader "
                    f"but {state} in the writer"
                )
        r_extra = _extra(r.get("additionalProperties", True))
        for name, w_prop in w_props.items():
            if name in r_props:
                problems += self.compare(r_props[name], w_prop, f"{at}.{name}")
            elif r_extra is False:
                problems.append(
                    f"{at}.{name}: field {name!r} was written but the reader forbids unknown fields"
                )
            else:
                problems += self.compare(r_extra, w_prop, f"{at}.{name}")
        w_extra = _extra(w.get("additionalProperties", not w_props))
        if w_extra is False:
            return problems
        if r_extra is False:
            problems.append(f"{at}: writer allowed any fields, the reader forbids unknown fields")
        else:
            problems += self.compare(r_extra, w_extra, f"{at}.*")
        return problems


def _ref(schema: Any) -> str | None:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    return ref if isinstance(ref, str) else None


def _extra(value: Any) -> Schema | bool:
    """``additionalProperties`` as a schema to compare against, or ``False`` when closed."""
    if value is True:
        return _ANY
    if isinstance(value, dict):
        schema: Schema = value
        return schema
    return False


def _resolve(raw: Any, defs: dict[str, Schema]) -> Schema:
    if not isinstance(raw, dict):
        return _ANY  # ``true`` (anything); ``false`` never appears in pydantic's output
    schema: Schema = raw
    for _ in range(32):
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **all_of[0]}
        elif "$ref" in schema:
            target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], _ANY)
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        else:
            break
    return schema


def _branches(schema: Schema) -> list[Schema] | None:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches: list[Schema] = schema[key]
            return branches
    return None


def _values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        values: list[Any] = schema["enum"]
        return values
    return None


def _types(schema: Schema) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    return set(declared) if isinstance(declared, list) else {declared}


def _constraints(r: Schema, w: Schema, at: str) -> list[str]:
    problems = []
    for key in ("format", "pattern", "multipleOf"):
        if key in r and r[key] != w.get(key):
            problems.append(f"{at}: reader requires {key} {r[key]!r}, writer had {w.get(key)!r}")
    for key in _LOWER:
        if key in r and (key not in w or w[key] < r[key]):
            problems.append(f"{at}: reader raised {key} to {r[key]!r} (writer: {w.get(key)!r})")
    for key in _UPPER:
        if key in r and (key not in w or w[key] > r[key]):
            problems.append(f"{at}: reader lowered {key} to {r[key]!r} (writer: {w.get(key)!r})")
    return problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "object"


def _show(schema: Schema) -> str:
    return json.dumps({k: v for k, v in schema.items() if k not in _NOTES})[:80]

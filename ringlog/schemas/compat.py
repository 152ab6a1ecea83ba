"""Is a reader schema able to read what a writer schema allowed? (BACKWARD compatibility)

Works on the JSON Schemas pydantic emits: ``$ref``/``$defs``, ``anyOf`` for optional and union
fields, ``enum``/``const`` for literals, objects with ``required`` and ``additionalProperties``,
arrays, ``format`` and ``pattern``. Every difference that would let an old event fail
validation under the new model is reported as a readable problem.
"""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]
_ANY: Schema = {}


def backward_problems(reader: Schema, writer: Schema) -> list[str]:
    """Return why data valid under ``writer`` may be invalid under ``reader`` (empty: none)."""
    return _compare(reader, writer, reader.get("$defs", {}), writer.get("$defs", {}), "$")


def _resolve(schema: Schema, defs: dict[str, Schema]) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1], _ANY)
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
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


def _compare(
    r: Schema, w: Schema, rdefs: dict[str, Schema], wdefs: dict[str, Schema], at: str
) -> list[str]:
    r, w = _resolve(r, rdefs), _resolve(w, wdefs)
    if not r or r == {"description": r.get("description")}:
        return []  # the reader accepts anything here
    w_branches = _branches(w)
    if w_branches is not None:
        return [p for b in w_branches for p in _compare(r, b, rdefs, wdefs, at)]
    r_branches = _branches(r)
    if r_branches is not None:
        attempts = [_compare(b, w, rdefs, wdefs, at) for b in r_branches]
        if any(not a for a in attempts):
            return []
        return [f"{at}: no branch of the reader's union accepts the writer's {_show(w)}"]

    r_values, w_values = _values(r), _values(w)
    if r_values is not None:
        if w_values is None:
            return [f"{at}: reader allows only {r_values}, writer allowed any {_show(w)}"]
        dropped = [v for v in w_values if v not in r_values]
        return [f"{at}: reader no longer accepts {dropped}"] if dropped else []

    problems: list[str] = []
    r_types, w_types = _types(r), _types(w)
    if r_types is not None:
        if w_types is None and w_values is None:
            return [f"{at}: reader requires type {sorted(r_types)}, writer allowed anything"]
        widened = r_types | ({"integer"} if "number" in r_types else set())
        w_actual = w_types or {_json_type(v) for v in w_values or []}
        if not w_actual <= widened:
            return [f"{at}: type {sorted(w_actual)} written, reader accepts {sorted(r_types)}"]
    for key in ("format", "pattern"):
        if key in r and r[key] != w.get(key):
            problems.append(f"{at}: reader requires {key} {r[key]!r}, writer had {w.get(key)!r}")
    if "object" in (r_types or set()) or "properties" in r:
        problems += _compare_objects(r, w, rdefs, wdefs, at)
    if "array" in (r_types or set()):
        problems += _compare(r.get("items", _ANY), w.get("items", _ANY), rdefs, wdefs, f"{at}[]")
    return problems


def _compare_objects(
    r: Schema, w: Schema, rdefs: dict[str, Schema], wdefs: dict[str, Schema], at: str
) -> list[str]:
    problems = []
    r_props: dict[str, Schema] = r.get("properties", {})
    w_props: dict[str, Schema] = w.get("properties", {})
    w_required = set(w.get("required", []))
    for name in r.get("required", []):
        if name not in w_required:
            state = "optional" if name in w_props else "absent"
            problems.append(f"{at}.{name}: required by the reader but {state} in the writer")
    r_extra = r.get("additionalProperties", True)
    for name, w_prop in w_props.items():
        if name in r_props:
            problems += _compare(r_props[name], w_prop, rdefs, wdefs, f"{at}.{name}")
        elif r_extra is False:
            problems.append(f"{at}.{name}: written before but the reader forbids unknown fields")
        elif isinstance(r_extra, dict):
            problems += _compare(r_extra, w_prop, rdefs, wdefs, f"{at}.{name}")
    w_extra = w.get("additionalProperties", True)
    if isinstance(r_extra, dict) and isinstance(w_extra, dict):
        problems += _compare(r_extra, w_extra, rdefs, wdefs, f"{at}.*")
    elif r_extra is False and w_extra is not False and not w_props:
        problems.append(f"{at}: writer allowed any fields, the reader forbids unknown fields")
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
    return "string" if isinstance(value, str) else "object"


def _show(schema: Schema) -> str:
    return json.dumps({k: v for k, v in schema.items() if k not in ("title", "description")})[:80]

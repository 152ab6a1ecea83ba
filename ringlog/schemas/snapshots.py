"""Committed JSON Schemas of every event version, and the check that guards them.

``snapshots/<type>.json`` holds ``{"type": …, "versions": {"1": [rev0, rev1, …], …}}``: per
version, every schema it has had, oldest first, append-only. ``export`` appends the current
schema where it changed; ``check`` fails when the current model could not read an event written
under any committed revision (BACKWARD_TRANSITIVE), when a snapshot is stale or missing, or when
an old version has no upcaster path to the current one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import msgspec
import msgspec.inspect as mi

from ringlog.schemas.base import PHONE_PATTERN, PhoneNumber
from ringlog.schemas.compat import backward_problems
from ringlog.schemas.registry import Registry

#: Where the committed snapshots live (package data of ``ringlog.schemas``).
SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
#: What to run when a snapshot is missing or stale.
EXPORT_COMMAND = "ringlog schemas export"

Schema = dict[str, Any]
Revisions = dict[tuple[str, int], list[Schema]]

#: Patterns validated one way and committed another: the phone pattern is checked with ``\Z``
#: (Python's ``$`` also matches before a final newline) but the contract keeps the ``$`` form.
_EXPORTED_PATTERNS = {
    meta.pattern: PHONE_PATTERN for meta in get_args(PhoneNumber) if isinstance(meta, msgspec.Meta)
}
_STRUCTS = (mi.StructType, mi.TypedDictType, mi.DataclassType)


def contract_schema(model: type[Any]) -> Schema:
    r"""The JSON Schema committed for ``model`` (a msgspec Struct): ``msgspec.json.schema``
    reshaped to the contract's form (the one pydantic wrote), so compat.py compares like for like.

    - The root is the model's object schema, nested types under ``$defs`` (left out when
      empty); msgspec's root is a ``$ref`` into ``$defs``.
    - A Struct that ignores unknown fields (``forbid_unknown_fields=False``: Retell's bodies and
      their parts) is open, ``additionalProperties: true``: compat.py reads an object without
      it as closed. msgspec already writes ``false`` on Structs that forbid unknown fields.
    - The phone pattern ``^…\Z`` the models validate with is written as
      :data:`~ringlog.schemas.base.PHONE_PATTERN` (``^…$``), as it always was.
    - A ``datetime`` keeps ``format: date-time`` (msgspec writes it only for ``tz=True``), and
      a ``dict[str, Any]`` says ``additionalProperties: true``, as pydantic wrote them.

    Pure: a new, JSON-plain dict on every call (a tuple default is a list, as it is once
    committed); titles and descriptions are msgspec's.
    """
    raw: Schema = msgspec.json.decode(msgspec.json.encode(msgspec.json.schema(model)))
    defs: dict[str, Schema] = raw.pop("$defs", {})
    _conform(mi.type_info(model), raw, defs, set())
    name = _name(raw)
    del raw["$ref"]
    root = {**defs[name], **raw}
    if f'"#/$defs/{name}"' not in json.dumps([root, {k: v for k, v in defs.items() if k != name}]):
        del defs[name]  # kept only when the model refers to itself
    return {"$defs": defs, **root} if defs else root


def _conform(t: mi.Type, node: Schema, defs: dict[str, Schema], done: set[str]) -> None:
    """Apply :func:`contract_schema`'s changes to ``node``, the schema msgspec wrote for ``t``."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if "$ref" in node:
        name = _name(node)
        if name in done:
            return
        done.add(name)
        node = defs[name]
    if isinstance(t, mi.StrType) and node.get("pattern") in _EXPORTED_PATTERNS:
        node["pattern"] = _EXPORTED_PATTERNS[node["pattern"]]
    elif isinstance(t, mi.DateTimeType) and node.get("type") == "string":
        node.setdefault("format", "date-time")
    elif isinstance(t, _STRUCTS):
        if not getattr(t, "forbid_unknown_fields", False):
            node.setdefault("additionalProperties", True)
        properties = node.get("properties", {})
        for field in t.fields:
            _conform(field.type, properties[field.encode_name], defs, done)
    elif isinstance(t, mi.CollectionType) and isinstance(node.get("items"), dict):
        _conform(t.item_type, node["items"], defs, done)
    elif isinstance(t, mi.DictType):
        if isinstance(t.value_type, mi.AnyType):
            node.setdefault("additionalProperties", True)
        elif isinstance(node.get("additionalProperties"), dict):
            _conform(t.value_type, node["additionalProperties"], defs, done)
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            branch = _branch(member, node.get("anyOf", []), defs)
            if branch is not None:
                _conform(member, branch, defs, done)


def _branch(member: mi.Type, branches: list[Schema], defs: dict[str, Schema]) -> Schema | None:
    """The branch msgspec wrote for ``member`` of a union: msgspec allows one member of each
    JSON kind, save tagged Structs (then a nested ``anyOf`` of ``$ref``s, one per class)."""
    while isinstance(member, mi.Metadata):
        member = member.type
    flat = [b for branch in branches for b in branch.get("anyOf", [branch])]
    if isinstance(member, _STRUCTS):
        refs = [b for b in flat if "$ref" in b and defs[_name(b)].get("type") == "object"]
        named = [b for b in refs if defs[_name(b)].get("title") == member.cls.__name__]
        found = refs if len(refs) == 1 else named
    else:
        kinds = {
            "string": (mi.StrType, mi.DateTimeType),
            "array": (mi.CollectionType,),
            "object": (mi.DictType,),
        }
        kind = next((k for k, types in kinds.items() if isinstance(member, types)), None)
        found = [b for b in flat if kind and b.get("type") == kind]
    return found[0] if len(found) == 1 else None


def _name(ref: Schema) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def current_schemas(registry: Registry) -> dict[tuple[str, int], Schema]:
    """The JSON Schema of every version code defines: current models and legacy upcaster inputs.

    Keyed by ``(event_type, version)``. A legacy version appears only when its upcaster was
    registered with a ``legacy_schema``.
    """
    schemas = {(m.event_type, m.schema_version): contract_schema(m) for m in registry.models()}
    schemas.update(registry.legacy_schemas())
    return schemas


def load_snapshots(directory: Path = SNAPSHOT_DIR) -> Revisions:
    """Every committed revision, keyed by ``(event_type, version)``, oldest first.

    Raises ``ValueError`` naming the file when a snapshot is not in the expected shape.
    """
    revisions: Revisions = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            event_type: str = data["type"]
            for version, history in data["versions"].items():
                if not isinstance(history, list):
                    raise TypeError("a version must hold a list of revisions")
                revisions[(event_type, int(version))] = history
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed schema snapshot {path}: {exc}") from exc
    return revisions


def export(registry: Registry, directory: Path = SNAPSHOT_DIR) -> list[str]:
    """Append each current schema that differs from its latest revision; return what changed.

    Old revisions are never rewritten or removed, and only files that change are written.
    Each returned line reads ``"<type> v<version> (revision <n>)"``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, dict[str, list[Schema]]] = {}
    for (event_type, version), history in load_snapshots(directory).items():
        by_type.setdefault(event_type, {})[str(version)] = list(history)
    changed: list[str] = []
    touched: set[str] = set()
    for (event_type, version), schema in sorted(current_schemas(registry).items()):
        history = by_type.setdefault(event_type, {}).setdefault(str(version), [])
        if not history or history[-1] != schema:
            history.append(schema)
            changed.append(f"{event_type} v{version} (revision {len(history) - 1})")
            touched.add(event_type)
    for event_type in sorted(touched):
        versions = dict(sorted(by_type[event_type].items(), key=lambda item: int(item[0])))
        body = json.dumps({"type": event_type, "versions": versions}, indent=2) + "\n"
        (directory / f"{event_type}.json").write_text(body, encoding="utf-8")
    return changed


def check(registry: Registry, directory: Path = SNAPSHOT_DIR) -> list[str]:
    """Every reason the current contract may fail to read events written under committed ones.

    Reports: a version with no snapshot; a current schema that differs from its latest
    revision (run ``ringlog schemas export``); a current schema that cannot read data valid
    under any committed revision of the same version (BACKWARD_TRANSITIVE); a committed type
    no longer registered, a committed version newer than the current one, or an older version
    with no upcaster path to the current one. Empty: all good.
    """
    problems: list[str] = []
    committed = load_snapshots(directory)
    current = current_schemas(registry)
    for (event_type, version), schema in sorted(current.items()):
        history = committed.get((event_type, version))
        if not history:
            problems.append(f"{event_type} v{version}: no snapshot; run `{EXPORT_COMMAND}`")
            continue
        for number, revision in enumerate(history):
            problems.extend(
                f"{event_type} v{version} cannot read revision {number}: {problem}"
                for problem in backward_problems(schema, revision)
            )
        if history[-1] != schema:
            problems.append(
                f"{event_type} v{version}: schema differs from the committed revision "
                f"{len(history) - 1}; run `{EXPORT_COMMAND}` and commit the snapshot"
            )
    current_versions = {m.event_type: m.schema_version for m in registry.models()}
    for event_type, current_version in sorted(current_versions.items()):
        problems.extend(
            f"{event_type} v{version}: readable through upcasters but has no snapshot; "
            f"give its upcaster a legacy_schema and run `{EXPORT_COMMAND}`"
            for version in registry.versions(event_type)
            if version != current_version
            and (event_type, version) not in committed
            and (event_type, version) not in current
        )
    for event_type, version in sorted(committed):
        if event_type not in current_versions:
            problems.append(
                f"{event_type}: committed but no longer registered (old events unreadable)"
            )
        elif version > current_versions[event_type]:
            problems.append(f"{event_type} v{version}: committed but newer than the current model")
        elif not registry.can_upcast(event_type, version):
            problems.append(f"{event_type} v{version}: no upcaster path to the current version")
    return problems

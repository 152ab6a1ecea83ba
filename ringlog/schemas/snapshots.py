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
from typing import Any

from ringlog.schemas.compat import backward_problems
from ringlog.schemas.registry import Registry

#: Where the committed snapshots live (package data of ``ringlog.schemas``).
SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
#: What to run when a snapshot is missing or stale.
EXPORT_COMMAND = "ringlog schemas export"

Schema = dict[str, Any]
Revisions = dict[tuple[str, int], list[Schema]]


def current_schemas(registry: Registry) -> dict[tuple[str, int], Schema]:
    """The JSON Schema of every version code defines: current models and legacy upcaster inputs.

    Keyed by ``(event_type, version)``. A legacy version appears only when its upcaster was
    registered with a ``legacy_schema``.
    """
    schemas = {(m.event_type, m.schema_version): m.model_json_schema() for m in registry.models()}
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

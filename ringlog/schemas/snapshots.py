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

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
Schema = dict[str, Any]


def current_schemas(registry: Registry) -> dict[tuple[str, int], Schema]:
    """The JSON Schema of every readable version: current models and legacy upcaster inputs."""
    schemas = {(m.event_type, m.schema_version): m.model_json_schema() for m in registry.models()}
    schemas.update(registry.legacy_schemas())
    return schemas


def load_snapshots(directory: Path) -> dict[tuple[str, int], list[Schema]]:
    """Every committed revision, keyed by (type, version)."""
    revisions: dict[tuple[str, int], list[Schema]] = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        for version, history in data["versions"].items():
            revisions[(data["type"], int(version))] = history
    return revisions


def export(registry: Registry, directory: Path = SNAPSHOT_DIR) -> list[str]:
    """Append the current schemas that differ from their latest revision; return what changed."""
    directory.mkdir(parents=True, exist_ok=True)
    committed = load_snapshots(directory)
    changed = []
    by_type: dict[str, dict[str, list[Schema]]] = {}
    for (event_type, version), history in committed.items():
        by_type.setdefault(event_type, {})[str(version)] = list(history)
    for (event_type, version), schema in sorted(current_schemas(registry).items()):
        history = by_type.setdefault(event_type, {}).setdefault(str(version), [])
        if not history or history[-1] != schema:
            history.append(schema)
            changed.append(f"{event_type} v{version} (revision {len(history) - 1})")
    for event_type, versions in by_type.items():
        body = {"type": event_type, "versions": dict(sorted(versions.items()))}
        (directory / f"{event_type}.json").write_text(json.dumps(body, indent=2) + "\n")
    return changed


def check(registry: Registry, directory: Path = SNAPSHOT_DIR) -> list[str]:
    """Every reason the current contract may fail to read events written under committed ones."""
    problems = []
    committed = load_snapshots(directory)
    current = current_schemas(registry)
    for (event_type, version), schema in sorted(current.items()):
        history = committed.get((event_type, version))
        if not history:
            problems.append(f"{event_type} v{version}: no snapshot; run `ringlog schemas export`")
            continue
        for number, revision in enumerate(history):
            for problem in backward_problems(schema, revision):
                problems.append(f"{event_type} v{version} cannot read revision {number}: {problem}")
        if history[-1] != schema and not problems:
            problems.append(
                f"{event_type} v{version}: changed compatibly; run `ringlog schemas export`"
            )
    current_versions = {t: registry.current_version(t) for t, _ in current}
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

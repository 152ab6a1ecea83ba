"""``(type, schema_version) -> model``, and the upcasters that bring old versions forward.

The log is never rewritten. An event written under an old version is read by applying the
chain of upcasters (pure ``dict -> dict`` functions, version N to N+1) and validating the
result with the current model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ringlog.errors import UnknownEventType
from ringlog.schemas.base import EventModel

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
M = TypeVar("M", bound=type[EventModel])


class Registry:
    """Event models by type and version, with upcasters and the schemas of legacy versions."""

    def __init__(self) -> None:
        self._current: dict[str, type[EventModel]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._legacy_schemas: dict[tuple[str, int], dict[str, Any]] = {}

    def register(self, model: M) -> M:
        """Register ``model`` as the current version of its type (usable as a decorator)."""
        if model.event_type in self._current:
            raise ValueError(f"event type {model.event_type!r} registered twice")
        self._current[model.event_type] = model
        return model

    def upcaster(
        self, event_type: str, from_version: int, *, legacy_schema: dict[str, Any]
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning ``from_version`` payloads into ``from_version + 1``.

        ``legacy_schema`` is the JSON Schema of ``from_version`` (kept in the snapshots even
        when no model class exists for it any more).
        """

        def decorate(func: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"upcaster for {event_type} v{from_version} registered twice")
            self._upcasters[key] = func
            self._legacy_schemas[key] = legacy_schema
            return func

        return decorate

    def current_version(self, event_type: str) -> int:
        """Return the version current code writes for ``event_type``."""
        try:
            return self._current[event_type].schema_version
        except KeyError:
            raise UnknownEventType(event_type, 0) from None

    def model_for(self, event_type: str, version: int) -> type[EventModel]:
        """Return the model of ``event_type`` at ``version``; only the current one has a class."""
        model = self._current.get(event_type)
        if model is None or model.schema_version != version:
            raise UnknownEventType(event_type, version)
        return model

    def can_upcast(self, event_type: str, version: int) -> bool:
        """Return whether ``version`` of ``event_type`` can be brought to the current one."""
        model = self._current.get(event_type)
        if model is None:
            return False
        return all((event_type, v) in self._upcasters for v in range(version, model.schema_version))

    def upcast(self, event_type: str, version: int, payload: Payload) -> tuple[int, Payload]:
        """Apply upcasters from ``version`` to the current version; return (version, payload)."""
        model = self._current.get(event_type)
        if model is None or version > model.schema_version or version < 1:
            raise UnknownEventType(event_type, version)
        while version < model.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(event_type, version)
            payload = step(payload)
            version += 1
        return version, payload

    def models(self) -> Iterator[type[EventModel]]:
        """Iterate over the current model of every registered type."""
        yield from self._current.values()

    def versions(self, event_type: str) -> list[int]:
        """Every version of ``event_type`` that can be read: legacy ones and the current one."""
        legacy = [v for (t, v) in self._upcasters if t == event_type]
        return sorted({*legacy, self.current_version(event_type)})

    def legacy_schemas(self) -> dict[tuple[str, int], dict[str, Any]]:
        """JSON Schemas of versions that exist only as upcaster inputs."""
        return dict(self._legacy_schemas)


#: The registry of every event family in ringlog (filled when ``ringlog.schemas`` is imported).
REGISTRY = Registry()

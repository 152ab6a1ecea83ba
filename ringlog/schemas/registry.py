"""``(type, schema_version) -> model``, and the upcasters that bring old versions forward.

The log is never rewritten. An event written under an old version is read by applying the
chain of upcasters (pure ``dict -> dict`` functions, version N to N+1) and validating the
result with the current model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ringlog.errors import UnknownEventType
from ringlog.schemas.base import TOPICS, EventModel

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
M = TypeVar("M", bound=type[EventModel])


class Registry:
    """Event models by type and version, with upcasters and the schemas of legacy versions.

    Only the current version of a type has a model class; older versions are readable when an
    unbroken chain of upcasters leads from them to the current one.
    """

    def __init__(self) -> None:
        self._current: dict[str, type[EventModel]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._legacy_schemas: dict[tuple[str, int], dict[str, Any]] = {}

    def register(self, model: M) -> M:
        """Register ``model`` as the current version of its type (usable as a decorator).

        Raises ``ValueError`` when the type is already registered, or when the model lacks a
        valid ``event_type``, ``schema_version`` (>= 1) or ``topic`` (one of :data:`TOPICS`).
        """
        event_type = getattr(model, "event_type", None)
        version = getattr(model, "schema_version", None)
        topic = getattr(model, "topic", None)
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"{model.__name__} has no event_type")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"{event_type}: schema_version must be an int >= 1, not {version!r}")
        if topic not in TOPICS:
            raise ValueError(f"{event_type}: topic {topic!r} is not one of {sorted(TOPICS)}")
        if event_type in self._current:
            raise ValueError(f"event type {event_type!r} registered twice")
        self._current[event_type] = model
        return model

    def upcaster(
        self, event_type: str, from_version: int, *, legacy_schema: dict[str, Any] | None = None
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a pure function turning ``from_version`` payloads into ``from_version + 1``.

        Used as a decorator. ``legacy_schema`` is the JSON Schema of ``from_version`` when no
        snapshot of it was ever exported from a model (it is then exported as data); a version
        that once had a model keeps the snapshot committed back then. Raises ``ValueError`` on
        a second upcaster for the same step.
        """
        if from_version < 1:
            raise ValueError(f"{event_type}: versions start at 1, not {from_version}")
        key = (event_type, from_version)

        def decorate(func: Upcaster) -> Upcaster:
            if key in self._upcasters:
                raise ValueError(f"upcaster for {event_type} v{from_version} registered twice")
            self._upcasters[key] = func
            if legacy_schema is not None:
                self._legacy_schemas[key] = legacy_schema
            return func

        return decorate

    def current_version(self, event_type: str) -> int:
        """Return the version current code writes for ``event_type``.

        Raises :class:`UnknownEventType` (version 0) for an unregistered type.
        """
        model = self._current.get(event_type)
        if model is None:
            raise UnknownEventType(event_type, 0)
        return model.schema_version

    def model_for(self, event_type: str, version: int) -> type[EventModel]:
        """Return the model of ``event_type`` at ``version``; only the current one has a class.

        Raises :class:`UnknownEventType` for any other ``(type, version)``.
        """
        model = self.current_model(event_type, version)
        if model is None:
            raise UnknownEventType(event_type, version)
        return model

    def current_model(self, event_type: str, version: int) -> type[EventModel] | None:
        """:meth:`model_for`, with ``None`` instead of raising (the decoder's hot path)."""
        model = self._current.get(event_type)
        return model if model is not None and model.schema_version == version else None

    def can_upcast(self, event_type: str, version: int) -> bool:
        """Return whether ``version`` of ``event_type`` can be brought to the current one."""
        model = self._current.get(event_type)
        if model is None or version < 1 or version > model.schema_version:
            return False
        return all((event_type, v) in self._upcasters for v in range(version, model.schema_version))

    def upcast(self, event_type: str, version: int, payload: Payload) -> tuple[int, Payload]:
        """Apply upcasters from ``version`` up to the current one; return ``(current, payload)``.

        A payload already at the current version is returned as is. Raises
        :class:`UnknownEventType` for an unregistered type, a version newer than the current
        one, below 1, or with a missing step in the chain. Exceptions raised by an upcaster
        (a malformed old payload) propagate.
        """
        model = self._current.get(event_type)
        if model is None or version > model.schema_version or version < 1:
            raise UnknownEventType(event_type, version)
        start = version
        while version < model.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(event_type, start)
            payload = step(payload)
            version += 1
        return version, payload

    def models(self) -> Iterator[type[EventModel]]:
        """Iterate over the current model of every registered type, in registration order."""
        yield from self._current.values()

    def versions(self, event_type: str) -> list[int]:
        """Every version of ``event_type`` known here, ascending: upcaster inputs and current.

        Raises :class:`UnknownEventType` for an unregistered type.
        """
        legacy = [v for (t, v) in self._upcasters if t == event_type]
        return sorted({*legacy, self.current_version(event_type)})

    def legacy_schemas(self) -> dict[tuple[str, int], dict[str, Any]]:
        """JSON Schemas given for versions that exist only as upcaster inputs."""
        return dict(self._legacy_schemas)


#: The registry of every event family in ringlog (filled when ``ringlog.schemas`` is imported).
REGISTRY = Registry()

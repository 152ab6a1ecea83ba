"""The one declaration of every topic ringlog uses.

Names here are logical (``calls``); the physical name adds the configured prefix
(``ringlog.calls``, see :meth:`ringlog.config.Settings.topic`). Every topic that holds facts
keeps them forever (``retention.ms=-1``): the log is the truth and every projection is rebuilt
from it. None is compacted, because every record is an event, not a latest value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FOREVER = -1
#: The largest record ringlog appends: a Retell webhook body up to the API's webhook limit
#: (``RINGLOG_API_WEBHOOK_MAX_BODY_BYTES``, 8 MiB) in its envelope, with room to spare. The
#: producer refuses larger ones; the topics that take webhook bodies (``calls``, ``quarantine``
#: and ``deadletter``) are created with ``max.message.bytes`` at this size.
MAX_RECORD_BYTES = 10 * 1024 * 1024
_LARGE_RECORDS = {"max.message.bytes": str(MAX_RECORD_BYTES)}


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is keyed, partitioned and retained."""

    name: str
    key: str
    holds: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int = FOREVER
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Return the topic-level configuration sent when the topic is created."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra_config,
        }


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "calls",
        key="call ref",
        holds="call requested/dispatched/failed/cancelled and Retell lifecycle events",
        partitions=6,
        extra_config=dict(_LARGE_RECORDS),
    ),
    TopicSpec("dialog", key="call ref", holds="dialog turns", partitions=6),
    TopicSpec(
        "sessions",
        key="patient phone (E.164)",
        holds="session started/progressed/dropped/resumed/completed/expired",
        partitions=6,
    ),
    # as many partitions as ``calls``: the worker that owns a call's partition reads its ABT too
    TopicSpec("abt", key="call ref", holds="ABT events with deterministic ids", partitions=6),
    TopicSpec("tasks", key="task id", holds="business task events", partitions=3),
    TopicSpec(
        "quarantine",
        key="source",
        holds="raw bytes of inputs that failed validation, reason in headers",
        partitions=1,
        extra_config=dict(_LARGE_RECORDS),
    ),
    TopicSpec(
        "deadletter",
        key="original key",
        holds="records a processor could not handle, error in headers",
        partitions=1,
        extra_config=dict(_LARGE_RECORDS),
    ),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


def spec(name: str) -> TopicSpec:
    """Return the declaration of the logical topic ``name``; ``KeyError`` if none."""
    return BY_NAME[name]

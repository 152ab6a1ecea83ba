"""What a projection is: the events it sees, what it reads, where it writes, how it retries."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, Protocol, TypeVar

from ringlog.schemas import Envelope
from ringlog.streams.offsets import Position

OpT = TypeVar("OpT")
OpT_contra = TypeVar("OpT_contra", contravariant=True)


class Event(NamedTuple):
    """A decoded record as a projection sees it: where it sits on the log, and the envelope."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope


@dataclass(frozen=True)
class Projection(Generic[OpT]):
    """What to read and how to turn it into operations for a target.

    ``project`` must be pure and per-event: ``project(a + b) == project(a) + project(b)``, so the
    runner can isolate a record that makes it raise. ``handles`` names the event types it reads;
    other types are skipped (even when undecodable, e.g. from a newer producer). ``None`` reads
    every type.
    """

    name: str
    topics: tuple[str, ...]
    project: Callable[[Sequence[Event]], list[OpT]]
    handles: frozenset[str] | None = None

    def reads(self, event_type: str | None) -> bool:
        """Whether records of ``event_type`` are this projection's to handle."""
        return self.handles is None or event_type is None or event_type in self.handles


class Target(Protocol[OpT_contra]):
    """Where a projection's operations land, with its checkpoint in the same store."""

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """Return the next offset to read per ``(topic, partition)`` (``{}`` when new)."""
        ...

    async def apply(
        self,
        projection: str,
        operations: Sequence[OpT_contra],
        positions: Mapping[Position, int],
    ) -> None:
        """Write ``operations`` and the next offsets ``positions`` in one transaction."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing target is retried, with exponential backoff from ``backoff_s`` up to
    ``backoff_max_s`` between attempts.

    A transient failure (the connection, the server, a timeout: see
    :mod:`ringlog.projections.retrying`) is retried until the runner is stopped, or until
    ``attempts`` attempts in all when set (then the runner raises). A data failure (the
    target refuses the records) is tried ``data_attempts`` times; then the runner writes the
    batch in parts to find the record(s) at fault and dead-letters them.
    """

    attempts: int | None = None
    backoff_s: float = 0.2
    backoff_max_s: float = 10.0
    data_attempts: int = 3

    def __post_init__(self) -> None:
        if self.data_attempts < 1:
            raise ValueError(f"data_attempts must be at least 1, not {self.data_attempts}")

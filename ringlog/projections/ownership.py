"""Which partitions a projection runner holds: positioned, owned, restored, and the hooks.

A partition assigned to the runner's consumer is *positioned* once sought to the target's
checkpoint; it is *owned* while it is positioned and still assigned (its owner alone acts on
its keys), and *restored* once applied up to where the log ended when it was assigned.
:class:`Ownership`, the base of :class:`~ringlog.projections.runner.ProjectionRunner`, keeps
that state and tells :meth:`~Ownership.on_revoked`; the runner positions partitions (and tells
:meth:`~Ownership.on_assigned`).
"""

from __future__ import annotations

from ringlog.streams.consumer import LogConsumer
from ringlog.streams.offsets import Position


class Ownership:
    """The partitions a runner holds, with its checkpoint (see the module)."""

    def __init__(self) -> None:
        #: next offset per partition known to be applied (the target's checkpoint)
        self.checkpoint: dict[Position, int] = {}
        self._positioned: set[Position] = set()
        #: per partition taken on, the log's end when it was assigned (see :meth:`restored`)
        self._restore_ends: dict[Position, int] = {}
        self._consumer: LogConsumer | None = None

    def _new_partitions(self, consumer: LogConsumer) -> set[Position]:
        """Forget revoked partitions (telling :meth:`on_revoked`); return the assigned ones
        not positioned yet."""
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        revoked = self._positioned - assigned
        if revoked:
            self._positioned -= revoked
            for position in revoked:
                self._restore_ends.pop(position, None)
            self.on_revoked(revoked)
        return assigned - self._positioned

    @property
    def owned(self) -> frozenset[Position]:
        """The partitions this member holds and has positioned (it alone acts on their keys).

        Read against the consumer's live assignment, so a partition revoked by a rebalance
        stops counting at once, before the batch loop notices."""
        consumer = self._consumer
        if consumer is None:
            return frozenset()
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        return frozenset(self._positioned & assigned)

    def restored(self, position: Position) -> bool:
        """Whether an owned partition has been applied up to where the log ended when it was
        assigned: from then on, every output its previous owner appended has been read."""
        end = self._restore_ends.get(position)
        return end is not None and self.checkpoint.get(position, 0) >= end

    def on_assigned(self, positions: frozenset[Position]) -> None:
        """Called once ``positions`` are assigned and positioned. Does nothing; a hook."""

    def on_revoked(self, positions: frozenset[Position] | set[Position]) -> None:
        """Called when ``positions`` were taken from this member. Does nothing; a hook."""

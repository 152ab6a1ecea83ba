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
        #: assignments positioned so far, and the one each held partition was positioned in
        self._assignments = 0
        self._taken_in: dict[Position, int] = {}
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
                self._taken_in.pop(position, None)
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

    def _took(self, positions: set[Position]) -> int:
        """Count ``positions`` as positioned, in a new assignment; return its number (to tell
        :meth:`_settled` which of them are still held since)."""
        self._assignments += 1
        self._positioned |= positions
        self._taken_in.update(dict.fromkeys(positions, self._assignments))
        return self._assignments

    def _settled(
        self, positions: set[Position], assignment: int, ends: dict[Position, int]
    ) -> frozenset[Position]:
        """Record ``ends`` (where the log ended, read after ``assignment``) as the restore ends
        of those ``positions`` held since that assignment, and return them: one revoked or
        positioned anew meanwhile is left to the later assignment."""
        held = frozenset(p for p in positions if self._taken_in.get(p) == assignment)
        for position in held:
            self._restore_ends[position] = ends.get(position, 0)
        return held

    def on_assigned(self, positions: frozenset[Position]) -> None:
        """Called once ``positions`` are assigned and positioned. Does nothing; a hook."""

    def on_revoked(self, positions: frozenset[Position] | set[Position]) -> None:
        """Called when ``positions`` were taken from this member. Does nothing; a hook."""

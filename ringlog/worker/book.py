"""The worker's in-memory view of every call: states folded from the log, and what is in flight.

The book is rebuilt from the ``calls`` topic on every start (the log is the truth), then kept up
to date by the live stream. It remembers, per partition, the next offset it has folded, so a
record delivered again (the stream restarts from its last committed offset) is not folded twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from ringlog.calls.state import CallState
from ringlog.schemas import Envelope


class CallBook:
    """States by call ref, folded positions by partition, and in-flight work."""

    def __init__(self) -> None:
        self._states: dict[str, CallState] = {}
        self._folded: dict[tuple[str, int], int] = {}
        #: call refs being placed with Retell right now (cleared when the outcome is folded)
        self.dispatching: set[str] = set()
        #: call refs with task effects (reschedule, cancel) not yet on the log: not to be placed
        self.held: set[str] = set()
        #: call refs whose record is being written (cleared when ``call.recorded`` is folded)
        self.recording: set[str] = set()
        #: call refs whose owed effects failed and must be retried
        self.unsettled: set[str] = set()
        #: task events (by event id) whose call effects could not be appended yet
        self.unsettled_tasks: dict[str, Envelope] = {}
        #: reschedule and delete events by task id, in log order: a call requested for the task
        #: but folded after them (``tasks`` and ``calls`` are not ordered) still gets their effects
        self.task_events: dict[str, list[Envelope]] = {}
        #: set once the rebuild from the log is complete
        self.ready = asyncio.Event()

    def get(self, call_ref: str) -> CallState | None:
        """The state of ``call_ref``, if any event of it was folded."""
        return self._states.get(call_ref)

    def put(self, state: CallState) -> None:
        """Store ``state`` as the current state of its call."""
        self._states[state.call_ref] = state

    def states(self) -> Iterator[CallState]:
        """Every known call's state."""
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)

    def folded(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record at this position was folded already."""
        return offset < self._folded.get((topic, partition), 0)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """Remember that everything before ``offset + 1`` in this partition is folded."""
        key = (topic, partition)
        self._folded[key] = max(self._folded.get(key, 0), offset + 1)

    def mark_abt(self, call_ref: str, name: str) -> None:
        """Remember that ABT ``name`` of ``call_ref`` is on the log."""
        state = self._states.get(call_ref) or CallState(call_ref=call_ref)
        self._states[call_ref] = state.with_abt(name)

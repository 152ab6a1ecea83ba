"""How far the views have folded the log: their checkpoints (:class:`Marks`).

Two tables, read by their primary key (projection, topic, partition): a few rows. The
timeline view's (the projector's ``view_checkpoints``) and the worker's
(``worker_checkpoints``). The live streams poll them, and read nothing else while they do not
move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from ringlog.console.queries.topics import ConsoleTopics, Position
from ringlog.projections.checkpoint import read_checkpoint
from ringlog.views.store import CHECKPOINTS as VIEW_CHECKPOINTS
from ringlog.views.store import TIMELINE_VIEW
from ringlog.worker.schema import CHECKPOINTS as WORKER_CHECKPOINTS
from ringlog.worker.schema import PROCESSOR


@dataclass(frozen=True)
class Marks:
    """How far the views have folded the log: the timeline view's checkpoint on
    ``calls``/``dialog``/``abt`` and the worker's on ``calls``/``abt`` (next offsets)."""

    timeline: Mapping[Position, int]
    worker: Mapping[Position, int]


def read_marks(connection: Connection, topics: ConsoleTopics) -> Marks:
    """Both checkpoints, on the topics of ``topics``' deployment only."""
    timeline = set(topics.timeline)
    worker = {topics.calls, topics.abt}
    tl = read_checkpoint(connection, VIEW_CHECKPOINTS, TIMELINE_VIEW)
    wk = read_checkpoint(connection, WORKER_CHECKPOINTS, PROCESSOR)
    return Marks(
        timeline={p: n for p, n in tl.items() if p[0] in timeline},
        worker={p: n for p, n in wk.items() if p[0] in worker},
    )


__all__ = ["Marks", "read_marks"]

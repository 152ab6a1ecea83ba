"""Which tasks exist: a view kept by the worker's runtime, read after it caught up.

A task is *known* once the log holds any event for it: a record on ``tasks`` keyed by its id,
or a ``call.requested`` on ``calls`` whose ``task_ref`` is the id. It is *deleted* once a
``task.deleted`` is on ``tasks``; deletion is final (later events for the id do not revive it).
The worker folds both topics into its store's ``worker_tasks`` table (see
:mod:`ringlog.worker.schema`), in the same transaction as its checkpoint.

:class:`TaskIndex` answers from that table. Before each answer it waits, bounded, until the
worker's checkpoint covers every partition of ``tasks`` and ``calls`` up to their ends at the
time of the question, so an answer covers every writer — other API processes,
``POST /v1/calls``, replays — and every event acknowledged before it was asked. It never reads
the log.
"""

from __future__ import annotations

from typing import Literal

from ringlog.errors import RetryableError
from ringlog.streams.head import LogHead, wait_covered
from ringlog.worker.views import WorkerViews

TaskStatus = Literal["unknown", "live", "deleted"]


class TaskIndex:
    """Task statuses from the worker's view, and one delete of a task at a time per process.

    :meth:`claim` lets one delete of a task run at a time in this process, so two concurrent
    deletes cannot both pass the check; deletes of one task racing in two processes can both be
    appended (a repeated ``task.deleted`` is harmless: every consumer treats it as the same
    tombstone).
    """

    def __init__(self, views: WorkerViews, head: LogHead, *, budget_s: float = 5.0) -> None:
        self._views = views
        self._head = head
        self._budget_s = budget_s
        self._claimed: set[str] = set()

    async def status(self, task_id: str) -> TaskStatus:
        """The task's status given everything acknowledged on the log before this call.

        Raises :class:`~ringlog.errors.RetryableError` when the worker's view does not reach
        the log's end within the budget (the worker is down or far behind), and
        :class:`~ringlog.errors.BrokerUnavailable` when the broker does not answer.
        """
        views = self._views
        partitions = [
            (topic, p)
            for topic in (views.tasks_topic, views.calls_topic)
            for p in await self._head.partitions(topic)
        ]
        ends = await self._head.ends(partitions)
        coverage = await wait_covered(views.load_checkpoint, ends, timeout_s=self._budget_s)
        if coverage.behind:
            raise RetryableError(
                "the task index is behind the log (is the worker running?); retry",
                retry_after=1.0,
            )
        deleted = await views.task_deleted(task_id)
        if deleted is None:
            return "unknown"
        return "deleted" if deleted else "live"

    def claim(self, task_id: str) -> bool:
        """Claim the right to delete ``task_id`` in this process; False if already claimed."""
        if task_id in self._claimed:
            return False
        self._claimed.add(task_id)
        return True

    def release(self, task_id: str) -> None:
        """End a claim (a deletion appended meanwhile is seen by the next :meth:`status`,
        which waits for the view to fold this process's appends)."""
        self._claimed.discard(task_id)

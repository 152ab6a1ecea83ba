"""The views the API reads, opened once per app: the worker's store and the log's head.

Reads never scan the log: they wait, bounded, until the view has folded the key's partition
up to its end at the time of the read (:func:`ringlog.streams.head.wait_covered`), then answer
from the view, saying which position the answer reflects.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ringlog.api.deps import Services
from ringlog.calls.state import CallState
from ringlog.streams.head import Coverage, LogHead, wait_covered
from ringlog.tasks.index import TaskIndex
from ringlog.worker.store import WorkerViews

#: How long a read waits for a view to reach the log's end before answering from behind.
READ_WAIT_S = 2.0


@dataclass(frozen=True)
class Views:
    """The worker's views and the head of the log, for the API's reads."""

    worker: WorkerViews
    head: LogHead
    tasks: TaskIndex

    async def call(self, call_ref: str) -> tuple[CallState | None, Coverage]:
        """The call's state once the worker folded its partition of ``calls`` and ``abt`` as
        far as the log reached when asked (or ``READ_WAIT_S`` passed)."""
        worker = self.worker
        partition = await self.head.partition_of(worker.calls_topic, call_ref)
        ends = await self.head.ends(
            [(worker.calls_topic, partition), (worker.abt_topic, partition)]
        )
        coverage = await wait_covered(worker.load_checkpoint, ends, timeout_s=READ_WAIT_S)
        return await worker.call(call_ref), coverage

    async def close(self) -> None:
        """Close the log client and the database pool."""
        await self.head.stop()
        self.worker.close()


def views_of(request: Request, services: Services) -> Views:
    """The app's :class:`Views`, opened on first use (closed with the app)."""
    views: Views | None = getattr(request.app.state, "views", None)
    if views is None:
        settings = services.settings
        worker = WorkerViews.open(
            settings.crm.url,
            calls_topic=settings.topic("calls"),
            tasks_topic=settings.topic("tasks"),
            abt_topic=settings.topic("abt"),
        )
        head = LogHead(settings.kafka, services.log)
        views = Views(worker, head, TaskIndex(worker, head))
        request.app.state.views = views
    return views

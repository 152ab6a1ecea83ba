"""The console's one reader of the views: :class:`ConsoleReader`, one connection per call,
blocking work in a thread.

Its reads come by subject from :class:`~.calls.CallReads`, :class:`~.events.EventReads` and
:class:`~.sessions.SessionReads`; here are the two every page or stream shares: the views'
checkpoints (:meth:`ConsoleReader.marks`, which the live streams poll) and whether the
database answers (:meth:`ConsoleReader.answers`, for the health page).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from ringlog.console.queries.calls import CallReads
from ringlog.console.queries.checkpoints import Marks, read_marks
from ringlog.console.queries.events import EventReads
from ringlog.console.queries.sessions import SessionReads
from ringlog.console.queries.topics import ConsoleTopics


class ConsoleReader(CallReads, EventReads, SessionReads):
    """Reads the views in one SQL database (the CRM database, where the worker's store and
    the projector's views both live) for one deployment's topics."""

    def __init__(self, engine: Engine, topics: ConsoleTopics) -> None:
        self.engine = engine
        self.topics = topics

    async def marks(self) -> Marks:
        """Both checkpoints, on this deployment's topics only."""
        return await asyncio.to_thread(self._marks)

    def _marks(self) -> Marks:
        with self.engine.connect() as connection:
            return read_marks(connection, self.topics)

    async def answers(self) -> bool:
        """Whether the database answers ``SELECT 1``."""
        return await asyncio.to_thread(self._answers)

    def _answers(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True


__all__ = ["ConsoleReader"]

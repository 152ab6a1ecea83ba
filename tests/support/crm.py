"""The CRM projection in tests: events at fixed times, a store's lifetime, its rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import Envelope, EventModel

#: When the test stories start; :func:`env` times events in minutes after it.
T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)


def env(payload: EventModel, minutes: int = 0) -> Envelope:
    """``payload`` as an event that occurred ``minutes`` after :data:`T0`."""
    return Envelope.new(payload, source="test", occurred_at=T0 + dt.timedelta(minutes=minutes))


@contextmanager
def crm_store(url: str) -> Iterator[CrmStore]:
    """A CRM store on ``url``, closed afterwards."""
    crm = CrmStore(url)
    try:
        yield crm
    finally:
        crm.close()


def rows(store: CrmStore, table: Any) -> list[dict[str, Any]]:
    """Every row of ``table`` in ``store``, in primary-key order."""
    with store.engine.connect() as connection:
        found = connection.execute(select(table).order_by(*table.primary_key.columns))
        return [dict(r._mapping) for r in found]

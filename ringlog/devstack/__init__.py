"""The embedded default stack: Tansu, fakesnow, moto, Redis and a SQLite CRM on one machine."""

from ringlog.devstack.errors import DevstackError
from ringlog.devstack.stack import (
    PartState,
    PartStatus,
    StackState,
    down,
    is_running,
    status,
    status_json,
    up,
)

__all__ = [
    "DevstackError",
    "PartState",
    "PartStatus",
    "StackState",
    "down",
    "is_running",
    "status",
    "status_json",
    "up",
]

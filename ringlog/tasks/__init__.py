"""Business tasks: the writable-field allow-list (:mod:`.fields`) and the index of known and
deleted tasks folded from the log (:mod:`.index`)."""

from ringlog.tasks.fields import ALLOWED, FieldErrors, TaskFields, unknown_fields, validate_fields
from ringlog.tasks.index import KnownTasks, TaskIndex, TaskStatus

__all__ = [
    "ALLOWED",
    "FieldErrors",
    "KnownTasks",
    "TaskFields",
    "TaskIndex",
    "TaskStatus",
    "unknown_fields",
    "validate_fields",
]

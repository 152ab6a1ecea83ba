"""Business tasks: the writable-field allow-list (:mod:`.fields`) and the index of known and
deleted tasks read from the worker's view (:mod:`.index`)."""

from ringlog.tasks.fields import ALLOWED, FieldErrors, TaskFields, unknown_fields, validate_fields
from ringlog.tasks.index import TaskIndex, TaskStatus

__all__ = [
    "ALLOWED",
    "FieldErrors",
    "TaskFields",
    "TaskIndex",
    "TaskStatus",
    "unknown_fields",
    "validate_fields",
]

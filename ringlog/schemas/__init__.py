"""The event contract: envelope, event families, registry, upcasters and codec.

Pure: imports nothing from ringlog but :mod:`ringlog.errors`, and no I/O library.
"""

from ringlog.schemas import abt, calls, dialog, retell, sessions, tasks
from ringlog.schemas.abt import AbtEvent, abt_id_for
from ringlog.schemas.base import EventModel, PhoneNumber, derived_event_id
from ringlog.schemas.calls import CallCancelled, CallDispatched, CallDispatchFailed, CallRequested
from ringlog.schemas.codec import (
    HEADER_EVENT_ID,
    HEADER_TYPE,
    HEADER_VERSION,
    decode,
    encode,
    headers,
)
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.envelope import Envelope, utc_now
from ringlog.schemas.registry import REGISTRY, Registry
from ringlog.schemas.retell import WEBHOOK_EVENTS, RetellCall, RetellCallInbound, RetellWebhook
from ringlog.schemas.sessions import (
    Appointment,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
)
from ringlog.schemas.tasks import TaskDeleted, TaskFieldWriteback, TaskIncomingCall, TaskRescheduled

__all__ = [
    "HEADER_EVENT_ID",
    "HEADER_TYPE",
    "HEADER_VERSION",
    "REGISTRY",
    "WEBHOOK_EVENTS",
    "AbtEvent",
    "Appointment",
    "CallCancelled",
    "CallDispatchFailed",
    "CallDispatched",
    "CallRequested",
    "DialogTurn",
    "Envelope",
    "EventModel",
    "Patient",
    "PhoneNumber",
    "Registry",
    "RetellCall",
    "RetellCallInbound",
    "RetellWebhook",
    "SessionCompleted",
    "SessionDropped",
    "SessionExpired",
    "SessionIdentityFailed",
    "SessionProgressed",
    "SessionResumed",
    "SessionStarted",
    "TaskDeleted",
    "TaskFieldWriteback",
    "TaskIncomingCall",
    "TaskRescheduled",
    "abt",
    "abt_id_for",
    "calls",
    "decode",
    "derived_event_id",
    "dialog",
    "encode",
    "headers",
    "retell",
    "sessions",
    "tasks",
    "utc_now",
]

"""The event contract: envelope, event families, registry, upcasters and codec.

Pure: imports nothing from ringlog but :mod:`ringlog.errors`, and no I/O library. Importing
this package registers every event family in :data:`REGISTRY`.
"""

from ringlog.schemas import abt, calls, dialog, retell, sessions, tasks
from ringlog.schemas.abt import AbtEvent, abt_id_for
from ringlog.schemas.base import TOPICS, EventModel, PhoneNumber, derived_event_id
from ringlog.schemas.calls import (
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRecorded,
    CallRequested,
    CallRescheduled,
)
from ringlog.schemas.codec import (
    HEADER_EVENT_ID,
    HEADER_TYPE,
    HEADER_VERSION,
    AsWritten,
    decode,
    encode,
    headers,
    written_as,
)
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.envelope import Envelope, new_event_id, utc_now
from ringlog.schemas.registry import REGISTRY, Registry
from ringlog.schemas.retell import (
    WEBHOOK_EVENTS,
    CallAnalysis,
    InboundCall,
    RetellCall,
    RetellCallAnalyzed,
    RetellCallEnded,
    RetellCallInbound,
    RetellCallStarted,
    RetellTranscriptUpdated,
    RetellTransferBridged,
    RetellTransferCancelled,
    RetellTransferEnded,
    RetellTransferStarted,
    RetellWebhook,
    Utterance,
    dedupe_key,
)
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
    "TOPICS",
    "WEBHOOK_EVENTS",
    "AbtEvent",
    "Appointment",
    "AsWritten",
    "CallAnalysis",
    "CallCancelled",
    "CallDispatchFailed",
    "CallDispatched",
    "CallRecorded",
    "CallRequested",
    "CallRescheduled",
    "DialogTurn",
    "Envelope",
    "EventModel",
    "InboundCall",
    "Patient",
    "PhoneNumber",
    "Registry",
    "RetellCall",
    "RetellCallAnalyzed",
    "RetellCallEnded",
    "RetellCallInbound",
    "RetellCallStarted",
    "RetellTranscriptUpdated",
    "RetellTransferBridged",
    "RetellTransferCancelled",
    "RetellTransferEnded",
    "RetellTransferStarted",
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
    "Utterance",
    "abt",
    "abt_id_for",
    "calls",
    "decode",
    "dedupe_key",
    "derived_event_id",
    "dialog",
    "encode",
    "headers",
    "new_event_id",
    "retell",
    "sessions",
    "tasks",
    "utc_now",
    "written_as",
]

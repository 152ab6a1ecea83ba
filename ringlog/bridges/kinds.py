"""What an inbound queue carries (``ringlog bridge sqs-in --as …``); imports nothing."""

from __future__ import annotations

from enum import StrEnum


class InboundKind(StrEnum):
    """The kind of body an inbound queue holds, and so the event each message becomes."""

    #: an upstream call request, the body of ``POST /v1/calls`` → ``call.requested``
    CALL_REQUEST = "call-request"
    #: a Retell webhook body (``call`` or legacy ``data``) → the ``retell.*`` event
    RETELL_EVENT = "retell-event"

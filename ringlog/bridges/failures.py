"""SQS failures, sorted once: what is worth retrying, what says the queue is missing, and one
line for people that never carries credentials (pure; no boto3 call)."""

from __future__ import annotations

import re
from typing import Any, cast

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from ringlog.errors import RetryableError, RinglogError

#: Error codes of a queue that does not exist (JSON protocol, query protocol).
_MISSING = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
#: Error codes that mean "later": throttling and SQS being unavailable.
_THROTTLED = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "ServiceUnavailable",
        "InternalError",
        "KmsThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)
#: An AWS access key id (long-term ``AKIA…``, temporary ``ASIA…``) in a message.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")


class SqsError(RinglogError):
    """SQS refused a request in a way retrying cannot fix (access denied, a bad request)."""


def describe(exc: BaseException) -> str:
    """An SQS failure in one line: the error code and SQS's message (never the request, its
    headers or its signature); anything shaped like an AWS access key id is masked."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _ACCESS_KEY_ID.sub(lambda m: m.group(0)[:4] + "…", text)


def error_code(exc: BaseException) -> str:
    """The error code of a ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing_queue(exc: BaseException) -> bool:
    """Whether ``exc`` says the queue does not exist."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    codes = {error.get("Code"), cast(dict[str, Any], error).get("QueryErrorCode")}
    return bool(codes & _MISSING)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` later may succeed: the connection, a timeout, throttling, 5xx."""
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, ConnectionError | HTTPClientError | TimeoutError | OSError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error_code(exc) in _THROTTLED
    return False

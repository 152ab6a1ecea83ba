"""The error hierarchy. How a caller should respond decides the class::

RinglogError
 ├── ConfigurationError      the deployment cannot run as set up (the message says the fix)
 ├── RetryableError          try again later (broker down, timeout, 429/5xx upstream)
 │    └── BrokerUnavailable  the Kafka cluster did not answer or did not ack in time
 └── PermanentError          retrying cannot help: quarantine or dead-letter the input
      ├── DecodeError        bytes that are not a valid event (carries the raw bytes)
      └── UnknownEventType   a (type, schema_version) that no model or upcaster handles
"""

from __future__ import annotations


class RinglogError(Exception):
    """Root of every error ringlog raises on purpose."""


class RetryableError(RinglogError):
    """The operation may succeed if retried later.

    Args:
        message: what failed.
        retry_after: seconds the caller should wait before retrying, when known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(RetryableError):
    """The Kafka cluster at ``bootstrap`` could not be reached or did not acknowledge in time."""

    def __init__(self, bootstrap: str, reason: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(
            f"Kafka broker at {bootstrap} unavailable: {reason}", retry_after=retry_after
        )
        self.bootstrap = bootstrap
        self.reason = reason


class ConfigurationError(RinglogError):
    """The deployment is set up in a way ringlog cannot run with; the message says how to fix it."""


class PermanentError(RinglogError):
    """Retrying cannot help; the input goes to quarantine or the dead-letter topic."""


class DecodeError(PermanentError):
    """Bytes that could not be decoded into a valid event.

    Args:
        reason: why decoding failed, readable by a person.
        raw: the bytes exactly as read, so nothing is lost when the event is set aside.
    """

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class InvalidEvent(PermanentError, ValueError):
    """An event built in code breaks its own schema (a phone number that is not E.164 …); it is
    refused before it is written, so no reader ever meets it. ``reason`` names the field,
    never its value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(DecodeError):
    """A ``(type, schema_version)`` that no registered model or upcaster chain handles."""

    def __init__(self, event_type: str, version: int, raw: bytes = b"") -> None:
        super().__init__(f"no model registered for event type {event_type!r} v{version}", raw)
        self.event_type = event_type
        self.version = version

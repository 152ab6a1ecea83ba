"""Errors of the embedded stack."""

from __future__ import annotations

from ringlog.errors import PermanentError


class DevstackError(PermanentError):
    """A part of the embedded stack could not start or answer; the message says which and why."""

"""The flu-shot booking dialog: a pure, deterministic policy (see ``booking``) and its slot
parsers (see ``extract``). No I/O, no clock reads, no randomness."""

from ringlog.dialog.booking import (
    SITES,
    STAGES,
    Booking,
    Reply,
    Stage,
    after_identity,
    check_identity,
    greeting,
    identity_fact,
    identity_question,
    is_complete,
    needs_identity_check,
    question,
    reminder,
    respond,
    stage_phrase,
    welcome_back,
)

__all__ = [
    "SITES",
    "STAGES",
    "Booking",
    "Reply",
    "Stage",
    "after_identity",
    "check_identity",
    "greeting",
    "identity_fact",
    "identity_question",
    "is_complete",
    "needs_identity_check",
    "question",
    "reminder",
    "respond",
    "stage_phrase",
    "welcome_back",
]

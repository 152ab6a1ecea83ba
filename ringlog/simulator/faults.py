"""Faults the local Retell can inject, all off by default.

One :class:`Faults` value is in force at a time: the one given to the simulator's factory,
replaced at runtime with ``PUT /sim/faults``. Replacing it restarts the create-call counters
behind ``rate_limit_first`` and ``server_error_first``. ``POST /sim/inbound`` may bring its own.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: The question ``drop_mid_dialog`` hangs up at in a dialog: when the agent asks for the day.
DROP_MID_DIALOG_PHRASE = "which day"


class Faults(BaseModel):
    """What goes wrong, on purpose, for calls created while this value is in force."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Every webhook is delivered twice (same body, each signed when sent).
    duplicate: bool = False
    #: The three webhooks arrive in reverse: call_analyzed, call_ended, call_started.
    reorder: bool = False
    #: Extra wait (seconds) before call_analyzed is sent.
    delay_analyzed_s: float = Field(default=0.0, ge=0.0)
    #: The call never connects: no call_started; call_ended is ``not_connected``/``dial_failed``.
    dial_failure: bool = False
    #: The first N create-call requests are answered 429 (rate limited).
    rate_limit_first: int = Field(default=0, ge=0)
    #: The next N create-call requests (after any 429s) are answered 500.
    server_error_first: int = Field(default=0, ge=0)
    #: The patient hangs up mid-dialog, ``user_hangup``. Timed script: a short partial
    #: transcript. Dialog: as ``drop_after_phrase="which day"`` (unless that is set).
    drop_mid_dialog: bool = False
    #: Dialog: the patient hangs up (the simulator closes the socket with 1000, no
    #: ``end_call``) as soon as the agent asks the question with this contract phrase, e.g.
    #: ``"which day"``. Timed script: the same as ``drop_mid_dialog``.
    drop_after_phrase: str | None = Field(default=None, min_length=1)

    def drop_phrase(self) -> str | None:
        """The question (lower-case contract phrase) the patient hangs up at, if any."""
        if self.drop_after_phrase is not None:
            return self.drop_after_phrase.lower()
        return DROP_MID_DIALOG_PHRASE if self.drop_mid_dialog else None

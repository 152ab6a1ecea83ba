"""Faults the local Retell can inject, all off by default.

One :class:`Faults` value is in force at a time: the one given to the simulator's factory,
replaced at runtime with ``PUT /sim/faults``. Replacing it restarts the create-call counters
behind ``rate_limit_first`` and ``server_error_first``. ``POST /sim/inbound`` may bring its own.

Besides failures, some are what real calls do on Retell's custom-LLM socket: a caller who keeps
talking after Retell asked for a reply (``keep_talking_at``), two requests back to back with
the same words (``twice_at``), the socket lost and opened again mid-call (``reconnect_at``),
and Retell's longest call (``two_hours``). Each ``…_at`` names a contract phrase of the agent's
questions (``"full name"``, ``"date of birth"``, ``"which day"``, ``"what time"``,
``"which site"``, ``"shall i book"``) and happens the first time that question is asked.
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
    #: Dialog: the patient keeps talking when answering this question. Retell asks for a
    #: reply with the answer cut short (its last word missing), sends ``update_only`` with
    #: the grown answer and ``turntaking: user_turn``, then asks again with the whole answer;
    #: the first reply is never spoken (left out of the transcript).
    keep_talking_at: str | None = Field(default=None, min_length=1)
    #: Dialog: the answer to this question is asked for twice, back to back, with the same
    #: words; only the second reply is spoken.
    twice_at: str | None = Field(default=None, min_length=1)
    #: Dialog: when the agent asks this question the socket is lost (no close frame) and
    #: opened again for the same call (``auto_reconnect``); the patient answers on the new
    #: socket, whose requests are numbered from 1 again.
    reconnect_at: str | None = Field(default=None, min_length=1)
    #: Whether the reopened socket gets ``call_details`` again (Retell may or may not send them).
    reconnect_details: bool = True
    #: The call lasts Retell's longest (2 h): ``call_ended`` and ``call_analyzed`` carry a
    #: 2-hour transcript with word timings and tool calls (about 1.4 MiB), the call's own
    #: turns first; the call still ends as it did.
    two_hours: bool = False

    def phrase(self, name: str) -> str | None:
        """The lower-case contract phrase of ``keep_talking_at``, ``twice_at`` or
        ``reconnect_at`` (by that name), if set."""
        value: str | None = getattr(self, name)
        return value.lower() if value is not None else None

    def drop_phrase(self) -> str | None:
        """The question (lower-case contract phrase) the patient hangs up at, if any."""
        if self.drop_after_phrase is not None:
            return self.drop_after_phrase.lower()
        return DROP_MID_DIALOG_PHRASE if self.drop_mid_dialog else None

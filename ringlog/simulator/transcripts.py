"""Transcripts of simulated calls, and the end of a call as long as Retell allows.

Pure functions, no I/O. :func:`transcript_text` is Retell's plain ``transcript`` and
:func:`utterances` its ``transcript_object`` (word timings included), for any list of
``(role, text)`` turns. :func:`long_call_ended` is the ``call_ended`` object of a call as long
as Retell allows (2 hours): a long transcript with word timings spread over the whole call and
tool calls in ``transcript_with_tool_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

#: Seconds each spoken word takes in the generated word timings.
_WORD_S = 0.32
#: Retell's longest call: ``max_call_duration_ms`` may be set to at most 2 hours.
MAX_CALL_DURATION_MS = 7_200_000
#: Words spoken per minute of a long call, both sides together (a 2-hour call: 12,000 words).
LONG_CALL_WORDS_PER_MINUTE = 100
#: A long call's tool calls: one invocation and its result after every this many turns.
LONG_CALL_TOOL_EVERY = 20


def long_call_ended(
    started: Mapping[str, Any],
    *,
    duration_ms: int = MAX_CALL_DURATION_MS,
    said: Sequence[tuple[str, str]] = (),
    reason: str = "max_duration_reached",
) -> dict[str, Any]:
    """The ``call_ended`` object of a call that talked for ``duration_ms`` (default Retell's
    longest, 2 hours) and ended for ``reason``: the ``said`` turns ``(role, text)``, then
    alternating agent and user turns up to about :data:`LONG_CALL_WORDS_PER_MINUTE` words a
    minute; ``transcript``, ``transcript_object`` with word timings spread over the whole call,
    and ``transcript_with_tool_calls`` with the same utterances and a tool call (invocation and
    result) after every :data:`LONG_CALL_TOOL_EVERY` turns. Deterministic: the same arguments
    give the same object (a 2-hour call is about 1.4 MiB of compact JSON).
    """
    target_words = duration_ms * LONG_CALL_WORDS_PER_MINUTE // 60_000
    lines: list[tuple[str, str]] = list(said)
    words = sum(len(text.split()) for _, text in lines)
    while words < target_words:
        role, text = _LONG_TURNS[(len(lines) - len(said)) % len(_LONG_TURNS)]
        lines.append((role, text))
        words += len(text.split())
    # the words spread evenly over the call: each turn's words, then a pause of one word
    word_s = duration_ms / 1000 / (words + len(lines))
    spoken = utterances(lines, word_s=word_s, gap_s=word_s)
    with_tools: list[dict[str, Any]] = []
    for index, entry in enumerate(spoken, start=1):
        with_tools.append(entry)
        if index % LONG_CALL_TOOL_EVERY == 0:
            tool_call_id = f"tool_{index // LONG_CALL_TOOL_EVERY:04d}"
            arguments = orjson.dumps({"site": SITES_SPOKEN[index % len(SITES_SPOKEN)]}).decode()
            with_tools += [
                {
                    "role": "tool_call_invocation",
                    "tool_call_id": tool_call_id,
                    "name": "check_availability",
                    "arguments": arguments,
                },
                {
                    "role": "tool_call_result",
                    "tool_call_id": tool_call_id,
                    "content": '{"slots":["10:00","10:30","14:00"]}',
                    "successful": True,
                },
            ]
    start_ms = int(started["start_timestamp"])
    return dict(started) | {
        "call_status": "ended",
        "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms,
        "disconnection_reason": reason,
        "transcript": transcript_text(lines),
        "transcript_object": spoken,
        "transcript_with_tool_calls": with_tools,
    }


#: The sites a long call's tool calls look up.
SITES_SPOKEN = ("Main Street Clinic", "Riverside Clinic", "Northgate Pharmacy")
_LONG_TURNS: tuple[tuple[str, str], ...] = (
    ("agent", "Let me check which days we still have open at that site for you."),
    ("user", "Sure, take your time, I was also wondering about my husband's appointment."),
    ("agent", "Of course. We can book both of you, one after the other, if that is easier."),
    ("user", "That would be great, but he works until four on most weekdays, you know."),
    ("agent", "Then the last appointment at four thirty might suit him; shall I look?"),
    ("user", "Yes please, and could you repeat the address of the Riverside clinic?"),
)


def transcript_text(lines: list[tuple[str, str]]) -> str:
    """Retell's plain ``transcript``: one ``Agent: …``/``User: …`` line per turn."""
    return "".join(f"{role.title()}: {text}\n" for role, text in lines)


def utterances(
    lines: list[tuple[str, str]], *, word_s: float = _WORD_S, gap_s: float = 0.6
) -> list[dict[str, Any]]:
    """``transcript_object`` entries with word timings (each word ``word_s`` long, ``gap_s``
    between turns); agent turns carry a response id."""
    entries: list[dict[str, Any]] = []
    clock = 0.3
    response_id = 0
    for role, text in lines:
        words = []
        for word in text.split():
            end = clock + word_s * 0.875
            words.append({"word": word, "start": round(clock, 2), "end": round(end, 2)})
            clock += word_s
        entry: dict[str, Any] = {"role": role, "content": text, "words": words}
        if role == "agent":
            entry["metadata"] = {"response_id": response_id}
            response_id += 1
        entries.append(entry)
        clock += gap_s
    return entries

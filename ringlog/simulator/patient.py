"""The scripted patient: who the simulated caller is and what they say back. Pure, no I/O.

The patient understands the agent only through a few lower-case phrases, a contract with
ringlog's dialog policy (:data:`PHRASES`): each complete agent utterance is searched for them,
and the one that starts latest in the utterance is taken as the question (acknowledgements
come before the question, e.g. "Thanks, I have your date of birth. Which day suits you?").
Anything else is answered with :data:`REPEAT`; the third unrecognised prompt in a row makes the
patient give up and hang up instead of asking again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

FULL_NAME = "full name"
DATE_OF_BIRTH = "date of birth"
WHICH_DAY = "which day"
WHAT_TIME = "what time"
WHICH_SITE = "which site"
SHALL_I_BOOK = "shall i book"
#: The phrases the patient recognises, in the order ringlog's booking dialog asks them.
PHRASES: tuple[str, ...] = (
    FULL_NAME,
    DATE_OF_BIRTH,
    WHICH_DAY,
    WHAT_TIME,
    WHICH_SITE,
    SHALL_I_BOOK,
)
#: The agent's words that mark a resumed session, where a spoofed caller lies about the DOB.
RESUME_MARKERS: tuple[str, ...] = ("welcome back", "confirm your date of birth")
#: The answer to anything the patient does not recognise.
REPEAT = "Sorry, could you repeat that?"
#: The patient's agreement to the booking.
YES = "Yes, please."
#: How many unrecognised prompts in a row make the patient hang up (the last one unanswered).
GIVE_UP_AFTER = 3


class Persona(BaseModel):
    """Who the patient is and what they want; every value is spoken text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="Jane Doe", min_length=1)
    date_of_birth: str = Field(default="March 3rd, 1980", min_length=1)
    preferred_date: str = Field(default="next Tuesday", min_length=1)
    preferred_time: str = Field(default="10am", min_length=1)
    site: str = Field(default="Main Street Clinic", min_length=1)
    #: Set for a spoofed caller: the DOB they give when asked to confirm a resumed session.
    wrong_date_of_birth: str | None = Field(default=None, min_length=1)


@dataclass(frozen=True)
class Reply:
    """The patient's turn: ``text`` to say, or ``None`` when the patient hangs up instead."""

    text: str | None
    #: The contract phrase recognised in the agent's utterance, if any.
    phrase: str | None = None

    @property
    def hangs_up(self) -> bool:
        """Whether the patient ends the call instead of answering."""
        return self.text is None


def recognise(utterance: str) -> str | None:
    """The contract phrase that starts latest in ``utterance`` (any case), else ``None``."""
    lowered = utterance.lower()
    found = [(lowered.rfind(phrase), phrase) for phrase in PHRASES if phrase in lowered]
    return max(found)[1] if found else None


class Patient:
    """One call's patient: answers each agent utterance, remembering what it has said.

    ``drop_after`` names a contract phrase: when the agent asks that question, the patient
    hangs up without answering (the ``drop_after_phrase`` fault).
    """

    def __init__(self, persona: Persona | None = None, *, drop_after: str | None = None) -> None:
        self.persona = persona or Persona()
        self.drop_after = drop_after.lower() if drop_after else None
        #: Unrecognised prompts since the last recognised one.
        self.unrecognised = 0
        #: ``(phrase, answer)`` for every question answered, in order.
        self.answered: list[tuple[str, str]] = []
        #: Why the patient hung up: ``"dropped"`` (fault), ``"gave_up"``, else ``None``.
        self.hung_up: str | None = None

    @property
    def booked(self) -> bool:
        """Whether the patient agreed to the booking."""
        return any(phrase == SHALL_I_BOOK for phrase, _ in self.answered)

    def greeting(self) -> str:
        """What the patient says first when the agent's begin message is empty."""
        return "Hi, I'd like to book an appointment."

    def answer(self, utterance: str) -> Reply:
        """The reply to one complete agent utterance (see the module docstring)."""
        phrase = recognise(utterance)
        if phrase is None:
            self.unrecognised += 1
            if self.unrecognised >= GIVE_UP_AFTER:
                self.hung_up = "gave_up"
                return Reply(None)
            return Reply(REPEAT)
        self.unrecognised = 0
        if phrase == self.drop_after:
            self.hung_up = "dropped"
            return Reply(None, phrase)
        text = self._answer_to(phrase, utterance.lower())
        self.answered.append((phrase, text))
        return Reply(text, phrase)

    def _answer_to(self, phrase: str, lowered: str) -> str:
        p = self.persona
        if phrase == DATE_OF_BIRTH:
            resumed = any(marker in lowered for marker in RESUME_MARKERS)
            if resumed and p.wrong_date_of_birth is not None:
                return p.wrong_date_of_birth
            return p.date_of_birth
        answers = {
            FULL_NAME: f"My name is {p.name}",
            WHICH_DAY: p.preferred_date,
            WHAT_TIME: p.preferred_time,
            WHICH_SITE: p.site,
            SHALL_I_BOOK: YES,
        }
        return answers[phrase]

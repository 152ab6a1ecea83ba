"""An optional OpenAI-compatible chat model that words the policy's replies.

The deterministic policy still decides everything: which slot was understood, what to ask
next, when the booking is done. When ``RINGLOG_DIALOG_MODEL_ENABLED`` is set, the model gets
the session context (task, stage, what the caller has said so far) and the policy's draft, and
returns the same content in its own words. A model that fails or is slow never blocks a call:
the draft is spoken instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ringlog.config import DialogSettings

log = structlog.get_logger("ringlog.dialog")

SYSTEM_PROMPT = (
    "You are the voice agent of a clinic's flu-shot booking line, speaking on the phone. "
    "Reword the draft reply so it sounds natural and brief. Keep every question, date, time, "
    "site and name exactly as in the draft; add no facts and no questions of your own. "
    "Answer with the reply only."
)
#: how much of the conversation the model sees
HISTORY_TURNS = 8


@dataclass(frozen=True)
class DialogContext:
    """What the model may know: the task, the stage, and the conversation so far."""

    task: str
    stage: str
    transcript: Sequence[Mapping[str, str]]


def messages_for(context: DialogContext, draft: str) -> list[dict[str, str]]:
    """The chat messages for one reply (pure)."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "system", "content": f"Task: {context.task}. Current stage: {context.stage}."},
    ]
    for turn in list(context.transcript)[-HISTORY_TURNS:]:
        role = "assistant" if turn.get("role") == "agent" else "user"
        messages.append({"role": role, "content": str(turn.get("content", ""))})
    messages.append({"role": "user", "content": f"Draft reply to reword: {draft}"})
    return messages


class ChatModel:
    """Words replies through ``POST {base_url}/chat/completions``."""

    def __init__(self, settings: DialogSettings, client: httpx.AsyncClient | None = None) -> None:
        headers = {}
        if settings.model_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.model_api_key.get_secret_value()}"
        self._name = settings.model_name
        self._client = client or httpx.AsyncClient(
            base_url=settings.model_base_url, headers=headers, timeout=settings.model_timeout_s
        )

    async def phrase(self, context: DialogContext, draft: str) -> str:
        """The model's wording of ``draft``, or ``draft`` itself if the model fails."""
        body: dict[str, Any] = {
            "model": self._name,
            "messages": messages_for(context, draft),
            "temperature": 0.3,
        }
        try:
            response = await self._client.post("/chat/completions", json=body)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("dialog model failed; speaking the draft", error=type(exc).__name__)
            return draft
        text = str(content or "").strip()
        return text or draft

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

"""The optional chat model words the policy's replies; when it fails the draft is spoken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ringlog.config import DialogSettings, Settings
from tests.integration.test_recovery import JANE, Line, line, recovery_settings
from tests.support.servers import serving

pytestmark = pytest.mark.integration

DRAFT_MARK = "Draft reply to reword: "


def chat_double(requests: list[dict[str, Any]], *, failing: bool) -> FastAPI:
    """An OpenAI-compatible endpoint that upper-cases the draft (or fails with 500)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body = await request.json()
        requests.append({"body": body, "auth": request.headers.get("authorization")})
        if failing:
            return JSONResponse({"error": "overloaded"}, status_code=500)
        draft = body["messages"][-1]["content"].removeprefix(DRAFT_MARK)
        return JSONResponse(
            {"choices": [{"message": {"role": "assistant", "content": draft.upper()}}]}
        )

    return app


async def served_with_model(topics: Settings, unique: str, url: str) -> AsyncIterator[Line]:
    settings = recovery_settings(
        topics,
        unique,
        model_enabled=True,
        model_base_url=f"{url}/v1",
        model_api_key="model-key",
        model_name="tiny",
    )
    async with line(settings) as served:
        yield served


async def test_the_model_words_replies_from_the_session_context(
    topics: Settings, unique: str
) -> None:
    requests: list[dict[str, Any]] = []
    with serving(chat_double(requests, failing=False)) as url:
        async for api in served_with_model(topics, unique, url):
            caller = api.caller(JANE)
            await caller.open()
            reply = await caller.say("My name is Jane Doe")
    assert "DATE OF BIRTH" in reply.text, "the model's wording is spoken"
    (sent,) = requests
    assert sent["auth"] == "Bearer model-key" and sent["body"]["model"] == "tiny"
    messages = sent["body"]["messages"]
    assert "date_of_birth" in messages[1]["content"], "the stage reached is in the context"
    assert {"role": "user", "content": "My name is Jane Doe"} in messages


async def test_a_failing_model_never_blocks_the_call(topics: Settings, unique: str) -> None:
    requests: list[dict[str, Any]] = []
    with serving(chat_double(requests, failing=True)) as url:
        async for api in served_with_model(topics, unique, url):
            caller = api.caller(JANE)
            await caller.open()
            reply = await caller.say("My name is Jane Doe")
    assert requests and "date of birth" in reply.text, "the policy's draft is spoken"


def test_the_model_is_off_by_default() -> None:
    assert DialogSettings().model_enabled is False

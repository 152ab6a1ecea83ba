"""What the demo expects to observe, and waiting for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One expected effect: where it should land, and whether it did."""

    story: str
    what: str
    where: str
    ok: bool
    detail: str = ""


@dataclass
class Story:
    """A story's transcript lines and checks, filled in as it runs."""

    name: str
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def expect(self, what: str, where: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(self.name, what, where, ok, detail))
        return ok


async def wait_for(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float = 60.0
) -> tuple[bool, T]:
    """Poll ``probe`` until ``done`` holds or the time is up; return (held, last result)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result) or time.monotonic() > deadline:
            return done(result), result
        await asyncio.sleep(0.25)

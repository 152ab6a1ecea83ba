"""The benches' console and progress lines: ``console`` (a rich console wide enough for the
tables when the output goes to a file) and ``say`` (a line with the seconds since the bench
started), shared by ``bench.scale``, ``bench.fold`` and ``bench.replay``."""

from __future__ import annotations

import sys
import time

from rich.console import Console

#: wide enough for the table when the output goes to a file
console = Console(width=None if sys.stdout.isatty() else 170)
_started = time.perf_counter()


def say(text: str) -> None:
    """A progress line with the seconds since the bench started."""
    console.print(f"[dim]{time.perf_counter() - _started:8.1f}s[/dim] {text}", highlight=False)

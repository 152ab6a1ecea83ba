"""Where a benchmark finds its broker: the configured one, or a private embedded stack."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ringlog import devstack
from ringlog.config import HOME_ENV, PART_ENV_VARS, Settings


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """Yield settings for a broker: ``RINGLOG_KAFKA_BOOTSTRAP`` if set, else a fresh dev stack.

    The private stack is stopped on the way out, SIGTERM included (turned into SystemExit
    here, so ``timeout`` or a supervisor stopping the bench leaves no broker behind)."""
    if os.environ.get(PART_ENV_VARS["kafka"]):
        yield Settings.load()
        return
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="ringlog-bench-") as tmp:
        home = Path(tmp)
        old = os.environ.get(HOME_ENV)
        os.environ[HOME_ENV] = str(home)
        try:
            devstack.up(Settings.load(), home=home)
            try:
                yield Settings.load()
            finally:
                devstack.down(home=home)
        finally:
            if old is None:
                os.environ.pop(HOME_ENV, None)
            else:
                os.environ[HOME_ENV] = old

"""The README's commands, run as a new user would paste them.

Every shell block of ``README.md`` carries a marker in the HTML comment right above it that
says how it is tested, and a block without one fails the test (so no command goes unrun):

* ``background until "TEXT"`` — started in the background (``make run``), in a home of its own
  on free ports; the next blocks run once its output shows TEXT; stopped with SIGTERM at the
  end, and nothing of its home may be left running.
* ``expect "TEXT"`` — run once; it must exit 0 and print TEXT.
* ``until "TEXT"`` — run again (it only reads) until it exits 0 and prints TEXT, within a bound.
* ``checked (…)`` — cannot run here (Docker) or is a reference list: the ``ringlog`` commands
  in it must answer ``--help``, the files it names must exist, and compose must know the
  services it names.

Blocks run in order in ``bash -euo pipefail`` and share one environment, as in one terminal
(variables a block sets are seen by the next). The README's addresses (``127.0.0.1:8000`` for
the API, ``:8100`` for the simulator) are replaced by the run's free ports, and ``make`` and
``source .venv/bin/activate`` use the environment running this test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from ringlog.config import HOME_ENV
from tests.support.ringlog_run import isolated_env, processes_of, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: How long an ``until`` block may take to see its text (a call rings, talks, is projected).
UNTIL_S = 90.0
#: How long ``make run`` may take to say it is running.
START_S = 120.0

_BLOCK = re.compile(
    r"(?:<!--\s*readme-test:\s*(?P<marker>.*?)\s*-->\s*\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```",
    re.S,
)
_MARKER = re.compile(r'^(?P<mode>background until|expect|until|checked)\b\s*(?:"(?P<text>[^"]*)")?')


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: its language, marker (mode and text) and body."""

    lang: str
    mode: str | None
    text: str | None
    body: str


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, in order."""
    blocks = []
    for match in _BLOCK.finditer(README.read_text()):
        mode = text = None
        if match["marker"]:
            marker = _MARKER.match(match["marker"])
            assert marker, f"unknown readme-test marker: {match['marker']!r}"
            mode, text = marker["mode"], marker["text"]
        blocks.append(Block(match["lang"], mode, text, match["body"]))
    return blocks


def shell_blocks() -> list[Block]:
    """The blocks a user runs in a shell (bash, sh, console) and the checked reference lists."""
    return [b for b in readme_blocks() if b.lang in {"bash", "sh", "console", "shell"} or b.mode]


def test_every_shell_block_says_how_it_is_tested() -> None:
    """A shell block without a marker would be a command no test runs."""
    blocks = shell_blocks()
    assert blocks
    unmarked = [b.body.splitlines()[0] for b in blocks if b.mode is None]
    assert not unmarked, f"README shell blocks without a readme-test marker: {unmarked}"
    assert [b.mode for b in blocks].count("background until") == 1


def ringlog_commands(body: str) -> list[list[str]]:
    """The ``ringlog`` commands of a block: the words up to the first option or placeholder."""
    found = []
    for line in body.splitlines():
        words = line.split("#")[0].split()
        if not words or words[0] != "ringlog":
            continue
        found.append(_leading_words(words[1:]))
    return found


def _leading_words(words: list[str]) -> list[str]:
    taken = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        taken.append(word)
    return taken


def test_checked_blocks_name_real_commands_files_and_services() -> None:
    """What cannot run here still has to be right: each ``ringlog`` command answers
    ``--help``, each repository file named exists, each compose service named is declared."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = set(compose["services"])
    checked = [b for b in shell_blocks() if b.mode == "checked"]
    assert checked
    for block in checked:
        for command in ringlog_commands(block.body):
            answer = subprocess.run(
                [sys.executable, "-m", "ringlog", *command, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert answer.returncode == 0, (command, answer.stderr[-2000:])
        for path in re.findall(r"\b(?:deploy|bench|tests|ringlog)/[\w./-]+", block.body):
            assert (ROOT / path).exists(), f"the README names {path}, which does not exist"
        for line in block.body.splitlines():
            words = shlex.split(line.split("#")[0])
            if words[:2] == ["docker", "compose"]:
                named = [w.split("=")[0] for w in words[2:] if not w.startswith("-")]
                named += [w.split("=")[0] for w in words if "=" in w and not w.startswith("-")]
                for word in named:
                    if word in {"up", "run", "build", "down", "logs"}:
                        continue
                    assert word in services, f"compose has no service {word!r}"


def test_the_production_files_hold_together() -> None:
    """The image runs any ringlog command; compose runs each process the README lists with
    only real settings; the example environment sets only real settings."""
    from ringlog.config import environment_variables

    known = set(environment_variables())
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["ringlog"\]', dockerfile, re.M)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for process in ("api", "worker", "projector", "bridge"):
        command = compose[process]["command"]
        answer = subprocess.run(
            [sys.executable, "-m", "ringlog", command[0], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answer.returncode == 0, (process, answer.stderr[-2000:])
    example = (ROOT / "deploy" / "ringlog.env.example").read_text()
    names = re.findall(r"^([A-Z0-9_]+)=", example, re.M)
    assert names and not set(names) - known, sorted(set(names) - known)
    for part in ("KAFKA_BOOTSTRAP", "REDIS_URL", "CRM_URL", "SNOWFLAKE_ACCOUNT", "SQS_REGION"):
        assert f"RINGLOG_{part}" in names


class Terminal:
    """Blocks run one after the other as in one terminal: the environment carries over."""

    def __init__(self, env: dict[str, str], api_port: int) -> None:
        self.env = env
        self.api_port = api_port
        self.simulator_port = int(env["RINGLOG_SIMULATOR_PORT"])
        self._state = Path(env[HOME_ENV]).parent / "terminal.env"

    def adapt(self, body: str) -> str:
        """The block with this run's ports and this test's Python environment."""
        body = body.replace("127.0.0.1:8000", f"127.0.0.1:{self.api_port}")
        body = body.replace("127.0.0.1:8100", f"127.0.0.1:{self.simulator_port}")
        return body.replace("source .venv/bin/activate", f"source {sys.prefix}/bin/activate")

    def run(self, body: str) -> subprocess.CompletedProcess[str]:
        """Run the block; keep the environment it leaves for the next one."""
        # set -a: variables the block sets are exported, so the saved environment holds them
        state = shlex.quote(str(self._state))
        script = f"set -aeuo pipefail\n{self.adapt(body)}\nenv -0 > {state}\n"
        answer = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if answer.returncode == 0 and self._state.exists():
            pairs = self._state.read_bytes().split(b"\0")
            self.env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        return answer


def _stop(proc: subprocess.Popen[str], home: Path) -> None:
    """SIGTERM to ``make run``'s process group, then nothing of the home may stay running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    finally:
        left = wait_for(lambda: not processes_of(home), 10)
        for pid in processes_of(home):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert left, "processes of the README's run were still running 10 s after it stopped"


def test_first_ten_minutes_run_as_written(tmp_path: Path) -> None:
    """Start ``make run`` as the README says, then run every block after it in order: each
    exits 0 and prints what it should."""
    blocks = shell_blocks()
    start = next(i for i, b in enumerate(blocks) if b.mode == "background until")
    env = isolated_env(tmp_path / "home")
    env["VENV"] = sys.prefix  # make's venv: the one running this test
    terminal = Terminal(env, int(env["RINGLOG_API_PORT"]))
    log_path = tmp_path / "make-run.log"
    background = blocks[start]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", terminal.adapt(background.body).strip()],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        assert background.text
        ready = wait_for(
            lambda: background.text in log_path.read_text() or proc.poll() is not None, START_S
        )
        output = log_path.read_text()
        assert ready and background.text in output, output[-4000:]
        found = re.search(r"local simulator at http://127\.0\.0\.1:(\d+)", output)
        assert found, output[-4000:]
        terminal.simulator_port = int(found[1])
        for block in blocks[start + 1 :]:
            if block.mode == "checked":
                continue
            assert block.text, block.body
            deadline = time.monotonic() + (UNTIL_S if block.mode == "until" else 0)
            while True:
                answer = terminal.run(block.body)
                seen = answer.returncode == 0 and block.text in answer.stdout
                if seen or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            assert seen, (
                f"README block did not print {block.text!r} (exit {answer.returncode}):\n"
                f"{block.body}\nstdout: {answer.stdout[-3000:]}\nstderr: {answer.stderr[-3000:]}"
            )
    finally:
        _stop(proc, Path(env[HOME_ENV]))

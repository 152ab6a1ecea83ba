"""The README's commands, run as a new user would paste them; what cannot run here, checked.

Every shell block of ``README.md`` (```bash, ```sh, ```console) and every reference list of
commands carries a marker in the HTML comment right above it that says how it is tested, and a
block without one fails (so no command goes unrun):

* ``background until "TEXT"`` — ``make run``: started in a home of its own on free ports; the
  next blocks run once its output shows TEXT; stopped with SIGTERM at the end (also when a
  block fails), and nothing of its home may be left running.
* ``expect "TEXT" …`` — run once; it must exit 0 and print every TEXT.
* ``until "TEXT" …`` — run again (it only reads) until it exits 0 and prints every TEXT, within
  a bound (a call rings, talks and is projected in a few seconds).
* ``checked (…)`` — cannot run here (no Docker engine) or is a reference list: each ``ringlog``
  command in it must exist, each repository file it names must exist, and each compose file
  and service it names must be declared.

Blocks run in order in ``bash -euo pipefail`` and share one environment, as in one terminal
(a variable a block sets, such as ``REF``, is seen by the next). The README's addresses
(``127.0.0.1:8000`` for the API, ``:8100`` for the simulator) are replaced by the run's ports,
and ``make`` and ``source .venv/bin/activate`` use the Python environment running this test.

``make demo`` is one of the blocks: it runs beside ``make run`` on topics of its own (about
20 s); ``tests/integration/test_demo.py`` checks its report in detail.

The rest of the README is checked against the code: every ``RINGLOG_*`` name it gives is a real
setting, every warehouse column it lists exists, its command list covers every command; and
the production files it points to hold together (the image's entrypoint is ``ringlog``, both
compose files parse and run real ``ringlog`` commands with real settings, the example
environment names only real settings).
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
from typing import Any

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from ringlog.cli import COMMANDS, app
from ringlog.config import HOME_ENV, environment_variables
from ringlog.projections.warehouse import schema as warehouse_schema
from tests.support.ringlog_run import isolated_env, processes_of, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
COMPOSE_FILES = ("docker-compose.yml", "deploy/compose.production.yml")
#: The processes a deployment runs (the README's "Run in production").
PROCESSES = ("api", "worker", "projector", "bridge")
#: How long an ``until`` block may take to see its text.
UNTIL_S = 90.0
#: How long ``make run`` may take to say it is running.
START_S = 120.0
#: How long one block may run (``make demo`` is the longest, ~20 s).
BLOCK_S = 180.0

_BLOCK = re.compile(
    r"(?:<!--\s*readme-test:\s*(?P<marker>.*?)\s*-->\s*\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```",
    re.S,
)
_MARKER = re.compile(r"^(?P<mode>background until|expect|until|checked)\b(?P<rest>.*)$")
_SHELL = {"bash", "sh", "console", "shell"}


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: its language, marker (mode and text) and body."""

    lang: str
    mode: str | None
    #: what the output must show: every one of these texts
    texts: tuple[str, ...]
    body: str

    def seen_in(self, output: str) -> bool:
        """Whether ``output`` shows every text of the marker."""
        return all(text in output for text in self.texts)


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, in order."""
    blocks = []
    for match in _BLOCK.finditer(README.read_text()):
        mode, texts = None, ()
        if match["marker"]:
            marker = _MARKER.match(match["marker"])
            assert marker, f"unknown readme-test marker: {match['marker']!r}"
            mode = marker["mode"]
            if mode != "checked":
                texts = tuple(re.findall(r'"([^"]*)"', marker["rest"]))
        blocks.append(Block(match["lang"], mode, texts, match["body"]))
    return blocks


def shell_blocks() -> list[Block]:
    """The blocks a user runs in a shell, and the checked reference lists."""
    return [b for b in readme_blocks() if b.lang in _SHELL or b.mode]


def _section(title: str) -> str:
    """The README's text under the heading ``title`` (any level), up to the next heading."""
    text = README.read_text()
    start = re.search(rf"^#+ {re.escape(title)}\n", text, re.M)
    assert start, f"the README has no section {title!r}"
    end = re.search(r"^#+ ", text[start.end() :], re.M)
    return text[start.end() : start.end() + end.start()] if end else text[start.end() :]


# --- the README itself -----------------------------------------------------------------------


def test_every_shell_block_says_how_it_is_tested() -> None:
    """A shell block without a marker would be a command no test runs."""
    blocks = shell_blocks()
    assert blocks
    unmarked = [b.body.splitlines()[0] for b in blocks if b.mode is None]
    assert not unmarked, f"README shell blocks without a readme-test marker: {unmarked}"
    assert [b.mode for b in blocks].count("background until") == 1
    run = [b for b in blocks if b.mode in {"expect", "until"}]
    assert all(b.texts for b in run), "an expect/until marker needs the text to look for"


def test_the_readme_is_written_for_users() -> None:
    """No project history in it: no missing design document, no work-item letters, no seed
    numbers; sections in the order a newcomer needs them; short enough to read at once."""
    text = README.read_text()
    assert "DESIGN.md" not in text
    assert not re.search(r"\[[A-Z]\]", text), "work-item letters belong in bench/README.md"
    assert not re.search(r"\bseed \d{3}\b", text, re.I)
    headings = re.findall(r"^#{1,2} (.+)$", text, re.M)
    order = ["First ten minutes", "Connect Retell", "Run in production", "Reference", "Decisions"]
    assert [h for h in headings if h in order] == order, headings
    assert len(text.splitlines()) < 650


def test_every_setting_named_is_real() -> None:
    """Each ``RINGLOG_*`` name of the README is read by the settings tree."""
    known = set(environment_variables())
    named = set(re.findall(r"\bRINGLOG_[A-Z0-9_]*[A-Z0-9]\b", README.read_text()))
    assert named and not named - known, sorted(named - known)


def test_the_warehouse_columns_listed_exist() -> None:
    """Each column the README's table lists for a warehouse table is one of its columns."""
    tables = {
        name: {column.name for column in columns}
        for name in dir(warehouse_schema)
        if (columns := getattr(getattr(warehouse_schema, name), "columns", None)) is not None
    }
    rows = re.findall(r"^\| `([A-Z_]+)` \|[^|]*\| (.*) \|$", _section("The warehouse"), re.M)
    assert {name for name, _ in rows} >= {"CALLS", "CALL_EVENTS", "SESSIONS", "ABT_EVENTS"}
    checked = {"PROJECTION_CHECKPOINTS": "CHECKPOINTS"}
    for name, columns in rows:
        table = tables[checked.get(name, name)]
        listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", columns))
        assert listed and not listed - table, (name, sorted(listed - table))


def _is_command(words: list[str]) -> bool:
    """Whether ``ringlog WORDS --help`` answers (in this process: the CLI imports lazily)."""
    answer = CliRunner().invoke(app, [*words, "--help"])
    return answer.exit_code == 0


def ringlog_commands(body: str) -> list[list[str]]:
    """The ``ringlog`` commands of a block: the words up to the first option or placeholder."""
    found = []
    for line in body.splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["ringlog"]:
            found.append(list(_leading_words(words[1:])))
    return found


def _leading_words(words: list[str]) -> list[str]:
    taken = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        taken.append(word)
    return taken


def _compose(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / path).read_text())
    return loaded


def _check_docker_line(words: list[str]) -> None:
    """``docker build`` builds this repository's Dockerfile; ``docker compose [-f F] …`` names
    a compose file that exists and only services it declares."""
    if words[:2] == ["docker", "build"]:
        assert words[-1] == "." and (ROOT / "Dockerfile").exists()
        return
    assert words[:2] == ["docker", "compose"], words
    rest, path = words[2:], "docker-compose.yml"
    if rest[:1] == ["-f"]:
        path, rest = rest[1], rest[2:]
    services = set(_compose(path)["services"])
    subcommand, *args = rest
    assert subcommand in {"up", "run", "build", "down", "logs", "ps"}, words
    named = [a.split("=")[0] for a in args if not a.startswith("-") and "=" not in a]
    named += [a.split("=")[0] for a in args if "=" in a and not a.startswith("-")]
    assert set(named) <= services, f"{path} has no service {sorted(set(named) - services)}"


def test_checked_blocks_name_real_commands_files_and_services() -> None:
    """What cannot run here still has to be right."""
    checked = [b for b in shell_blocks() if b.mode == "checked"]
    assert checked
    for block in checked:
        for command in ringlog_commands(block.body):
            assert _is_command(command), f"`ringlog {' '.join(command)}` is not a command"
        for path in re.findall(r"(?<![\w/])(?:deploy|bench|tests|ringlog)/[\w./-]+", block.body):
            assert (ROOT / path).exists() or path == "deploy/ringlog.env", path
        for line in block.body.splitlines():
            words = shlex.split(line.split("#")[0])
            if words[:1] == ["docker"]:
                _check_docker_line(words)
            elif words[:1] == ["cp"]:
                assert (ROOT / words[1]).exists(), f"the README copies {words[1]}, which is missing"


def test_the_command_list_covers_every_command() -> None:
    """The Operations list names each command ``ringlog --help`` lists."""
    listed = {c[0] for b in shell_blocks() if b.mode == "checked" for c in ringlog_commands(b.body)}
    assert {c.name for c in COMMANDS} <= listed, sorted({c.name for c in COMMANDS} - listed)


# --- the production files --------------------------------------------------------------------


def test_the_image_runs_any_ringlog_command() -> None:
    """The Dockerfile's entrypoint is ``ringlog`` (exec form, so the process gets SIGTERM) and its
    default command is a real one."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["ringlog"\]$', dockerfile, re.M)
    default = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert default and _is_command(yaml.safe_load(default[1]))


@pytest.mark.parametrize("path", COMPOSE_FILES)
def test_compose_runs_the_processes_with_real_commands_and_settings(path: str) -> None:
    """Each compose file runs api, worker, projector and bridge (and ``topics ensure`` first);
    every command is a real ``ringlog`` command, every variable a real setting, every
    environment file there or made from the example next to it."""
    known = set(environment_variables())
    services = _compose(path)["services"]
    assert set(PROCESSES) | {"topics"} <= set(services)
    assert services["topics"]["command"] == ["topics", "ensure"]
    for name, service in services.items():
        image = str(service.get("image", ""))
        if image != "ringlog:local" and not image.startswith("${RINGLOG_IMAGE"):
            continue  # infrastructure (Kafka, Redis, PostgreSQL, the SQS emulator)
        assert _is_command(service["command"]), (path, name, service["command"])
        unknown = {k for k in service.get("environment", {}) if k.startswith("RINGLOG_")} - known
        assert not unknown, (path, name, sorted(unknown))
        env_file = ((ROOT / path).parent / service["env_file"]).relative_to(ROOT)
        assert f"cp deploy/ringlog.env.example {env_file}" in README.read_text(), (
            f"{path}: the README does not say how to make {env_file}"
        )
        if name in PROCESSES:
            assert service["depends_on"]["topics"] == {
                "condition": "service_completed_successfully"
            }


def test_the_example_environment_names_only_real_settings() -> None:
    """``deploy/ringlog.env.example`` sets Kafka, Redis, PostgreSQL, Snowflake, SQS, Retell and
    the API, and nothing the settings tree does not read."""
    known = set(environment_variables())
    example = (ROOT / "deploy" / "ringlog.env.example").read_text()
    names = re.findall(r"^([A-Z0-9_]+)=", example, re.M)
    assert names and not set(names) - known, sorted(set(names) - known)
    assert len(names) == len(set(names)), "a name is set twice"
    for part in (
        "KAFKA_BOOTSTRAP",
        "REDIS_URL",
        "CRM_URL",
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_PHONE_HASH_KEY",
        "SQS_REGION",
        "RETELL_API_KEY",
        "RETELL_AGENT_ID",
        "API_KEYS",
    ):
        assert f"RINGLOG_{part}" in names, part
    assert re.search(r"^RINGLOG_CRM_URL=postgresql", example, re.M), "the CRM is PostgreSQL"


# --- the first ten minutes, run ----------------------------------------------------------------


class Terminal:
    """Blocks run one after the other as in one terminal: the environment carries over."""

    def __init__(self, env: dict[str, str], api_port: int, simulator_port: int) -> None:
        self.env = env
        self.api_port = api_port
        self.simulator_port = simulator_port
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
            timeout=BLOCK_S,
        )
        if answer.returncode == 0 and self._state.exists():
            pairs = self._state.read_bytes().split(b"\0")
            self.env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        return answer


def _stop(proc: subprocess.Popen[str], home: Path) -> None:
    """SIGTERM to ``make run``'s process group; then nothing of the home may stay running (what
    does is killed, and the test fails)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    gone = wait_for(lambda: not processes_of(home), 10)
    for pid in processes_of(home):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert gone, "processes of the README's run were still running 10 s after it stopped"


def test_first_ten_minutes_run_as_written(tmp_path: Path) -> None:
    """Start ``make run`` as the README says, then run every block after it in order: each
    exits 0 and prints what it should."""
    blocks = shell_blocks()
    start = next(i for i, b in enumerate(blocks) if b.mode == "background until")
    background = blocks[start]
    assert background.texts and "make run" in background.body
    env = isolated_env(tmp_path / "home")
    env["VENV"] = sys.prefix  # make's venv: the one running this test
    terminal = Terminal(env, int(env["RINGLOG_API_PORT"]), int(env["RINGLOG_SIMULATOR_PORT"]))
    log_path = tmp_path / "make-run.log"
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
        ready = wait_for(
            lambda: background.seen_in(log_path.read_text()) or proc.poll() is not None, START_S
        )
        output = log_path.read_text()
        assert ready and background.seen_in(output), output[-4000:]
        found = re.search(r"local simulator at http://127\.0\.0\.1:(\d+)", output)
        assert found, output[-4000:]
        terminal.simulator_port = int(found[1])
        for block in blocks[start + 1 :]:
            if block.mode == "checked":
                continue
            deadline = time.monotonic() + (UNTIL_S if block.mode == "until" else 0)
            while True:
                answer = terminal.run(block.body)
                seen = answer.returncode == 0 and block.seen_in(answer.stdout)
                if seen or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            assert seen, (
                f"README block did not print {block.texts} (exit {answer.returncode}):\n"
                f"{block.body}\nstdout: {answer.stdout[-3000:]}\nstderr: {answer.stderr[-3000:]}"
            )
    finally:
        _stop(proc, Path(env[HOME_ENV]))

"""`ringlog dev up|status|down`: real processes, started once, stopped exactly."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ringlog import devstack
from ringlog.cli import app
from ringlog.config import HOME_ENV, STACK_FILE, Settings
from ringlog.devstack.processes import ProcessRecord, is_alive

pytestmark = pytest.mark.integration

PARTS = {"kafka", "log-keeper", "redis", "warehouse", "sqs", "crm"}


@pytest.fixture(name="home")
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private home for one test's stack; whatever it started is stopped afterwards."""
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(home))
    for var in ("RINGLOG_KAFKA_BOOTSTRAP", "RINGLOG_SQS_ENDPOINT_URL", "RINGLOG_SNOWFLAKE_HOST"):
        monkeypatch.delenv(var, raising=False)
    yield home
    devstack.down(home=home)


def recorded_processes(home: Path) -> list[ProcessRecord]:
    """The processes the stack file says `up` started."""
    data = json.loads((home / STACK_FILE).read_text())
    return [ProcessRecord.from_json(p["process"]) for p in data["parts"].values() if p["process"]]


def pid_exists(pid: int) -> bool:
    """Whether any process has this pid (zombies excluded)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_up_starts_every_part_and_later_settings_find_them(home: Path) -> None:
    """After `up`, every part answers and Settings.load() reads the addresses it wrote."""
    state = devstack.up(Settings.load(), home=home)
    assert set(state) == PARTS
    assert {n for n, p in state.items() if p.managed} >= {"kafka", "log-keeper", "warehouse", "sqs"}

    status = devstack.status_json(devstack.status(Settings.load(), home=home))
    assert set(status) == PARTS
    assert all(part["answers"] for part in status.values()), status

    settings = Settings.load()
    assert settings.kafka.bootstrap == state["kafka"].address
    assert settings.sqs.endpoint_url == state["sqs"].address
    warehouse = f"http://{settings.warehouse.host}:{settings.warehouse.port}"
    assert warehouse == state["warehouse"].address
    assert settings.crm.url == state["crm"].address


def test_up_twice_does_not_start_a_second_stack(home: Path) -> None:
    """A second `up` returns the running stack: same processes, nothing new."""
    first = devstack.up(Settings.load(), home=home)
    second = devstack.up(Settings.load(), home=home)
    assert first == second
    assert devstack.is_running(home=home)


def test_down_leaves_no_process_and_no_stack_file(home: Path) -> None:
    """`down` stops every process `up` recorded and removes the address file."""
    devstack.up(Settings.load(), home=home)
    records = recorded_processes(home)
    assert records and all(is_alive(r) for r in records)

    stopped = devstack.down(home=home)

    assert set(stopped) == {"kafka", "log-keeper", "warehouse", "sqs"} | (
        {"redis"} if any("redis-server" in r.cmdline[0] for r in records) else set()
    )
    assert not any(pid_exists(r.pid) for r in records)
    assert not (home / STACK_FILE).exists()
    assert devstack.down(home=home) == []


def test_part_given_by_environment_is_used_not_started(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With RINGLOG_KAFKA_BOOTSTRAP set, `up` starts no broker and reports the given one."""
    other_home = tmp_path / "other"
    monkeypatch.setenv(HOME_ENV, str(other_home))
    other = devstack.up(Settings.load(), home=other_home)
    try:
        monkeypatch.setenv(HOME_ENV, str(home))
        monkeypatch.setenv("RINGLOG_KAFKA_BOOTSTRAP", other["kafka"].address)
        state = devstack.up(Settings.load(), home=home)
        assert not state["kafka"].managed and state["kafka"].process is None
        assert state["kafka"].address == other["kafka"].address
        assert "log-keeper" not in state  # it exists for the embedded broker only
        shown = devstack.status(Settings.load(), home=home)
        assert "log-keeper" not in {p.name for p in shown}
        assert all(p.answers for p in shown), shown
        recorded = [" ".join(r.cmdline) for r in recorded_processes(home)]
        assert not any("tansu" in line or "ringlog.devstack.keeper" in line for line in recorded)
        devstack.down(home=home)
        assert other["kafka"].process is not None and is_alive(other["kafka"].process)
    finally:
        devstack.down(home=other_home)


def test_a_part_that_cannot_start_is_a_clear_error_and_leaves_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker binary that dies at start gives a DevstackError naming it; nothing is left."""
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'address already in use' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    before = {p for p in os.listdir("/proc") if p.isdigit()}

    with pytest.raises(devstack.DevstackError) as caught:
        devstack.up(Settings.load(), home=home)

    message = str(caught.value)
    assert message.startswith("kafka exited during start-up")
    assert "address already in use" in message
    assert not (home / STACK_FILE).exists()
    started = {p for p in os.listdir("/proc") if p.isdigit()} - before
    leftovers = [p for p in started if pid_exists(int(p)) and _is_stack_process(int(p))]
    assert leftovers == []


def _is_stack_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    names = (b"fakesnow", b"moto.server", b"redis-server", b"devstack.keeper")
    return any(name in cmdline for name in names)


def test_cli_status_json_names_each_part(home: Path) -> None:
    """`ringlog dev status --json` prints address and answers for every part."""
    devstack.up(Settings.load(), home=home)
    result = CliRunner().invoke(app, ["dev", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert set(status) == PARTS
    assert all(set(v) >= {"address", "answers"} and v["answers"] for v in status.values())

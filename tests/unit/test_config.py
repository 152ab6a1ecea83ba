"""The settings tree: precedence, parsing, and secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringlog.config import (
    HOME_ENV,
    PART_ENV_VARS,
    STACK_FILE,
    Settings,
    environment_variables,
    parts_given_by_environment,
)


@pytest.fixture(name="home")
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    for var in environment_variables():
        if var != HOME_ENV:
            monkeypatch.delenv(var, raising=False)
    return tmp_path


def write_stack(home: Path, settings: dict[str, dict[str, object]]) -> None:
    (home / STACK_FILE).write_text(json.dumps({"parts": {}, "settings": settings}))


def test_defaults_without_environment_or_stack_file(home: Path) -> None:
    """With nothing configured, the documented defaults apply."""
    settings = Settings.load()
    assert settings.home == home
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.topic("calls") == "ringlog.calls"
    assert settings.api.keys == ()


def test_stack_file_supplies_addresses(home: Path) -> None:
    """Addresses written by `ringlog dev up` are read by every later Settings.load()."""
    write_stack(home, {"kafka": {"bootstrap": "127.0.0.1:4242"}, "redis": {"url": "redis://x:1"}})
    settings = Settings.load()
    assert settings.kafka.bootstrap == "127.0.0.1:4242"
    assert settings.redis.url == "redis://x:1"


def test_environment_beats_stack_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An address given by the environment wins over the stack file."""
    write_stack(home, {"kafka": {"bootstrap": "127.0.0.1:4242"}})
    monkeypatch.setenv("RINGLOG_KAFKA_BOOTSTRAP", "broker.prod:9092")
    assert Settings.load().kafka.bootstrap == "broker.prod:9092"
    assert parts_given_by_environment() == {"kafka"}


def test_api_keys_are_comma_separated_and_secrets_masked(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RINGLOG_API_KEYS splits on commas; the Retell key is a SecretStr that never prints."""
    monkeypatch.setenv("RINGLOG_API_KEYS", " one, two ,,three")
    monkeypatch.setenv("RINGLOG_RETELL_API_KEY", "key_live_123")
    settings = Settings.load()
    assert settings.api.keys == ("one", "two", "three")
    assert settings.retell.api_key is not None
    assert settings.retell.api_key.get_secret_value() == "key_live_123"
    assert "key_live_123" not in repr(settings)


def test_settings_are_frozen(home: Path) -> None:
    """Settings cannot be changed after they are read."""
    settings = Settings.load()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.bootstrap = "elsewhere:1"  # type: ignore[misc]


def test_every_part_has_an_environment_variable_the_tree_reads() -> None:
    """The variables that let a part be supplied externally are real settings."""
    known = environment_variables()
    assert set(PART_ENV_VARS) == {"kafka", "redis", "warehouse", "sqs", "crm"}
    for var in PART_ENV_VARS.values():
        assert var in known

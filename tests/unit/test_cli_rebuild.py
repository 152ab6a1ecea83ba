"""``ringlog rebuild`` and ``ringlog replay`` refuse what they cannot do before touching
anything (no broker, no database is reached)."""

from __future__ import annotations

from typer.testing import CliRunner

from ringlog.cli import app
from ringlog.projections.rebuildable import REBUILDABLE


def test_an_unknown_projection_is_refused_with_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["rebuild", "sesions"])
    assert result.exit_code == 2
    assert "no projection called 'sesions'" in result.output
    for name in REBUILDABLE:
        assert name in result.output
    assert set(REBUILDABLE) == {"sessions", "timeline", "crm", "call-lifecycle", "warehouse"}


def test_replay_wants_exactly_one_position() -> None:
    result = CliRunner().invoke(app, ["replay", "crm", "--to-earliest", "--by-duration", "PT1H"])
    assert result.exit_code == 1
    assert "one of --to-earliest, --to-datetime, --by-duration" in result.output


def test_replay_refuses_a_duration_that_is_not_one() -> None:
    for text in ("an hour", "-PT1H"):
        result = CliRunner().invoke(app, ["replay", "crm", "--by-duration", text])
        assert result.exit_code == 1, text
        assert "duration" in result.output


def test_replay_refuses_an_instant_that_is_not_one() -> None:
    result = CliRunner().invoke(app, ["replay", "crm", "--to-datetime", "yesterday"])
    assert result.exit_code == 2
    assert "'yesterday' is not an ISO-8601 datetime" in result.output

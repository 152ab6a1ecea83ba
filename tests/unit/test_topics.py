"""The topic declaration matches DESIGN.md's table and keeps facts forever."""

from __future__ import annotations

from ringlog.streams.topics import BY_NAME, FOREVER, TOPICS, spec


def test_declares_exactly_the_designed_topics() -> None:
    """Every topic of the design is declared once, and nothing else."""
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    assert set(names) == {"calls", "dialog", "sessions", "abt", "tasks", "quarantine", "deadletter"}


def test_keys_follow_the_design() -> None:
    """Calls, dialog and ABT are keyed by call ref; sessions by phone; tasks by task id."""
    assert {spec(n).key for n in ("calls", "dialog", "abt")} == {"call ref"}
    assert "phone" in spec("sessions").key
    assert spec("tasks").key == "task id"


def test_event_topics_keep_records_forever_and_are_not_compacted() -> None:
    """The log is the truth: no topic deletes or compacts away events."""
    for topic in TOPICS:
        config = topic.config()
        assert config["retention.ms"] == str(FOREVER)
        assert config["cleanup.policy"] == "delete"
        assert topic.partitions >= 1
    assert BY_NAME["calls"].partitions == BY_NAME["dialog"].partitions

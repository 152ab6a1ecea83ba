"""The archive of the embedded log: lines, tails cut short by a crash, topics, the clean mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringlog.devstack.archive import ArchivedRecord, LogArchive, decode, encode


def records(start: int, count: int, size: int = 10) -> list[ArchivedRecord]:
    return [
        ArchivedRecord(
            offset=o,
            timestamp_ms=1_700_000_000_000 + o,
            key=None if o % 3 == 0 else f"k{o}".encode(),
            value=None if o % 5 == 4 else bytes([o % 256]) * size + b"\n\x00",
            headers=(("type", b"call.requested"), ("bin", b"\xff\x00")) if o % 2 else (),
        )
        for o in range(start, start + count)
    ]


def test_a_line_gives_back_the_record_it_was_made_of() -> None:
    for record in records(0, 12):
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode(line) == record


def test_a_line_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an archive line"):
        decode(b'[1, 2, "k"')


def test_appended_records_are_read_back_in_order_and_give_the_next_offset(
    tmp_path: Path,
) -> None:
    archive = LogArchive(tmp_path / "log")
    archive.declare("t", 3)
    written = records(0, 250, size=700)  # more than one 64 KiB chunk from the tail
    archive.append("t", 1, written[:100])
    archive.append("t", 1, written[100:])
    archive.close()

    again = LogArchive(tmp_path / "log")
    assert again.topics() == {"t": 3}
    assert list(again.records("t", 1)) == written
    assert again.next_offset("t", 1) == 250
    assert again.next_offset("t", 0) == 0
    assert list(again.records("t", 2)) == []


def test_a_line_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path / "log")
    archive.declare("t", 1)
    archive.append("t", 0, records(0, 5))
    archive.close()
    path = tmp_path / "log" / "t" / "0.jsonl"
    with path.open("ab") as file:
        file.write(encode(records(5, 1)[0])[:-7])  # torn: no newline

    again = LogArchive(tmp_path / "log")
    assert again.next_offset("t", 0) == 5
    assert [r.offset for r in again.records("t", 0)] == [0, 1, 2, 3, 4]
    again.append("t", 0, records(5, 2))
    again.close()
    assert [r.offset for r in LogArchive(tmp_path / "log").records("t", 0)] == list(range(7))


def test_reading_while_the_keeper_appends_changes_nothing(tmp_path: Path) -> None:
    """Another process reads a file whose last line is still being written (buffered writes
    reach the disk in pieces): it sees the complete lines only and leaves the file as it is, so
    the rest of the line, written next, completes it."""
    writer = LogArchive(tmp_path / "log")
    writer.declare("t", 1)
    writer.append("t", 0, records(0, 3, size=100_000))  # lines longer than a read chunk
    writer.sync()
    path = tmp_path / "log" / "t" / "0.jsonl"
    line = encode(records(3, 1, size=100_000)[0])
    with path.open("ab") as file:
        file.write(line[:70_000])
    size = path.stat().st_size

    reader = LogArchive(tmp_path / "log")
    assert reader.next_offset("t", 0) == 3
    assert [r.offset for r in reader.records("t", 0)] == [0, 1, 2]
    assert path.stat().st_size == size
    with path.open("ab") as file:
        file.write(line[70_000:])
    assert reader.next_offset("t", 0) == 4
    assert [r.offset for r in reader.records("t", 0)] == [0, 1, 2, 3]


def test_a_file_of_one_line_under_way_has_no_records(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path / "log")
    archive.declare("t", 1)
    (tmp_path / "log" / "t" / "0.jsonl").write_bytes(encode(records(0, 1)[0])[:-3])
    assert archive.next_offset("t", 0) == 0
    assert list(archive.records("t", 0)) == []


def test_a_forgotten_topic_is_gone_and_the_clean_mark_is_written_and_removed(
    tmp_path: Path,
) -> None:
    archive = LogArchive(tmp_path / "log")
    assert archive.is_empty() and not archive.clean
    archive.declare("a", 1)
    archive.declare("b", 2)
    archive.append("a", 0, records(0, 3))
    archive.forget("a")
    assert archive.topics() == {"b": 2}
    assert list(archive.records("a", 0)) == []
    archive.mark_clean(True)
    assert LogArchive(tmp_path / "log").clean
    archive.mark_clean(False)
    assert not LogArchive(tmp_path / "log").clean

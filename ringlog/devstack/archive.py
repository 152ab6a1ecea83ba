"""The archive of the embedded log: every record of every topic, in files under ``<home>/log``.

The embedded broker (Tansu) keeps the log in memory. The log keeper
(:mod:`ringlog.devstack.keeper`) appends each record it reads to this archive and, when the
stack starts again, writes the archive back into the new, empty broker, so the log survives a
restart with the same offsets.

Layout::

    <home>/log/<topic>/topic.json        {"partitions": 6}
    <home>/log/<topic>/<partition>.jsonl one record per line, in offset order
    <home>/log/CLEAN                     present only while the archive is known complete

A line is ``[offset, timestamp_ms, key, value, [[header, value], …]]`` with bytes as base64
(``null`` for a missing key or value).

Only the keeper writes; anyone may read while it does. Readers never change a file: a last
line without its newline (a write under way, or one cut short by a crash) is not read. The
writer cuts such a line off when it opens the file to append, so a crash costs at most the
records that were not yet on disk.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

#: The file whose presence says the archive holds the whole log: written by the keeper when
#: it stops after reading the log to its end, removed when it starts.
CLEAN_MARKER = "CLEAN"


@dataclass(frozen=True)
class ArchivedRecord:
    """One record as the broker returned it."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def encode(record: ArchivedRecord) -> bytes:
    """One archive line (with its newline)."""
    return (
        orjson.dumps(
            [
                record.offset,
                record.timestamp_ms,
                _b64(record.key),
                _b64(record.value),
                [[name, _b64(value)] for name, value in record.headers],
            ]
        )
        + b"\n"
    )


def decode(line: bytes) -> ArchivedRecord:
    """The record of one archive line; ``ValueError`` when the line is not one."""
    try:
        offset, timestamp_ms, key, value, headers = orjson.loads(line)
        return ArchivedRecord(
            int(offset),
            int(timestamp_ms),
            _unb64(key),
            _unb64(value),
            tuple((str(name), _unb64(v) or b"") for name, v in headers),
        )
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not an archive line: {exc}") from exc


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(data: str | None) -> bytes | None:
    return None if data is None else base64.b64decode(data)


class LogArchive:
    """The archive under ``root`` (``<home>/log``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[tuple[str, int], IO[bytes]] = {}

    # -- what it holds ----------------------------------------------------------------------

    def topics(self) -> dict[str, int]:
        """``{topic: partition count}`` of every archived topic."""
        found = {}
        for meta in sorted(self.root.glob("*/topic.json")):
            found[meta.parent.name] = int(json.loads(meta.read_text())["partitions"])
        return found

    def next_offset(self, topic: str, partition: int) -> int:
        """The offset after the last complete record of the partition (0 when none).

        Reads only the file's tail and changes nothing (safe while the keeper appends)."""
        path = self._path(topic, partition)
        if not path.exists():
            return 0
        last = _last_line(path)
        return 0 if last is None else decode(last).offset + 1

    def records(self, topic: str, partition: int) -> Iterator[ArchivedRecord]:
        """The complete archived records of the partition, in offset order (changes nothing)."""
        path = self._path(topic, partition)
        if not path.exists():
            return
        with path.open("rb") as file:
            for line in file:
                if not line.endswith(b"\n"):
                    return  # a write under way or cut short: not a record yet
                yield decode(line)

    def is_empty(self) -> bool:
        """Whether no topic is archived."""
        return not self.topics()

    @property
    def clean(self) -> bool:
        """Whether the keeper last stopped with the whole log archived."""
        return (self.root / CLEAN_MARKER).exists()

    # -- changing it ------------------------------------------------------------------------

    def declare(self, topic: str, partitions: int) -> None:
        """Record that ``topic`` exists with ``partitions`` partitions."""
        folder = self.root / topic
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(folder / "topic.json", json.dumps({"partitions": partitions}).encode())

    def append(self, topic: str, partition: int, records: Sequence[ArchivedRecord]) -> None:
        """Append ``records`` (the next ones of the partition, in order); see :meth:`sync`.

        The first append of this archive to a file cuts off a line cut short by a crash."""
        if not records:
            return
        key = (topic, partition)
        file = self._open.get(key)
        if file is None:
            path = self._path(topic, partition)
            if path.exists():
                _cut_torn_tail(path)
            file = self._open[key] = path.open("ab")
        file.write(b"".join(encode(r) for r in records))

    def sync(self) -> None:
        """Flush what was appended to disk (fsync)."""
        for file in self._open.values():
            file.flush()
            os.fsync(file.fileno())

    def forget(self, topic: str) -> None:
        """Drop the topic from the archive (it was deleted, or made again from scratch)."""
        for key in [k for k in self._open if k[0] == topic]:
            self._open.pop(key).close()
        shutil.rmtree(self.root / topic, ignore_errors=True)

    def mark_clean(self, clean: bool) -> None:
        """Write or remove the marker that says the archive holds the whole log."""
        marker = self.root / CLEAN_MARKER
        if clean:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomically(marker, b"")
        else:
            marker.unlink(missing_ok=True)

    def close(self) -> None:
        """Sync and close the open files."""
        self.sync()
        for file in self._open.values():
            file.close()
        self._open.clear()

    def _path(self, topic: str, partition: int) -> Path:
        return self.root / topic / f"{partition}.jsonl"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _last_line(path: Path, chunk: int = 65_536) -> bytes | None:
    """The file's last complete line (one that ends with a newline), read backwards from its
    end; ``None`` when it has none."""
    with path.open("rb") as file:
        position = file.seek(0, os.SEEK_END)
        tail = b""
        while position > 0:
            step = min(chunk, position)
            position -= step
            file.seek(position)
            tail = file.read(step) + tail
            last_newline = tail.rfind(b"\n")
            if last_newline < 0:
                continue  # all of it so far is a line under way
            start = tail.rfind(b"\n", 0, last_newline) + 1
            if start > 0 or position == 0:
                return tail[start:last_newline]
        return None


def _cut_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write cut short) off the file."""
    with path.open("rb+") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return
        position = end
        while position > 0:
            step = min(65_536, position)
            position -= step
            file.seek(position)
            cut = file.read(step).rfind(b"\n")
            if cut >= 0:
                file.truncate(position + cut + 1)
                return
        file.truncate(0)

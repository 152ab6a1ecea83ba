"""``ringlog lag``: how far every reader of the log is behind its end.

Readers are of two kinds:

* **consumer groups**: their committed offsets (what the broker keeps; the worker's group, the
  projectors', any other client's);
* **projection checkpoints**: the next offset each projection stored in its own target, in the
  same transaction as its rows (the runner resumes from these, not from the group's commits):
  the CRM database's ``crm_projection_checkpoints``, ``view_checkpoints`` and
  ``worker_checkpoints``, and the warehouse's ``PROJECTION_CHECKPOINTS``.

Each position is compared with the partition's exact end offset
(:func:`ringlog.streams.offsets.end_offsets`). Only topics of this deployment (its topic
prefix) are shown. The cost is one request per group and per store, one query per checkpoint
table and one end-offset read per partition: nothing in proportion to the log's length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ringlog.config import Settings

Position = tuple[str, int]


@dataclass(frozen=True)
class Reader:
    """One reader of the log and the next offset it will read per partition."""

    name: str
    #: ``group`` (committed offsets) or ``checkpoint`` (stored by the projection)
    kind: str
    #: where the positions are kept: ``kafka``, ``crm db`` or ``warehouse``
    store: str
    positions: Mapping[Position, int] = field(default_factory=dict)

    def topics(self) -> list[str]:
        """The topics it has positions on."""
        return sorted({topic for topic, _ in self.positions})


@dataclass(frozen=True)
class PartitionLag:
    """A reader's position on one partition against the partition's end."""

    topic: str
    partition: int
    position: int
    end: int

    @property
    def lag(self) -> int:
        """Records on the log the reader has not read yet."""
        return max(self.end - self.position, 0)


def lag(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    name: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a list option
        [], "--name", "-n", help="Only this group or projection; repeat for several."
    ),
    warehouse: bool = typer.Option(
        True, "--warehouse/--no-warehouse", help="Read the warehouse's checkpoints too."
    ),
) -> None:
    """Show every consumer group's committed offsets and every projection's checkpoint
    against the log's end, per partition and in total."""
    from ringlog.cli.output import error_line, print_json, quiet_libraries
    from ringlog.config import Settings

    quiet_libraries()
    settings = Settings.load()
    readers, notes = asyncio.run(collect(settings, warehouse=warehouse))
    if name:
        readers = [r for r in readers if r.name in name]
    report = asyncio.run(measure(settings, readers))
    if as_json:
        print_json(
            {
                "lag": sum(p.lag for _, lags in report for p in lags),
                "readers": [_reader_json(reader, lags) for reader, lags in report],
            }
        )
    else:
        show(settings, report)
    for note in notes:
        error_line(note)


async def collect(settings: Settings, *, warehouse: bool = True) -> tuple[list[Reader], list[str]]:
    """Every reader with positions on this deployment's topics, and notes on the stores that
    could not be read (a warehouse that does not answer is not an error of the log)."""
    groups, crm, (stored, note) = await asyncio.gather(
        consumer_groups(settings),
        asyncio.to_thread(crm_checkpoints, settings),
        asyncio.to_thread(warehouse_checkpoints, settings) if warehouse else _nothing(),
    )
    readers = [*groups, *crm, *stored]
    notes = [note] if note else []
    return readers, notes


async def measure(
    settings: Settings, readers: Sequence[Reader]
) -> list[tuple[Reader, list[PartitionLag]]]:
    """Each reader's lag on every partition of the topics it reads (a partition it has no
    position on counts from the partition's start)."""
    from ringlog.streams.admin import start_offsets
    from ringlog.streams.offsets import end_offsets

    topics = sorted({t for r in readers for t in r.topics()})
    if not topics:
        return []
    ends = await end_offsets(settings.kafka, topics)
    # each reader's partitions: every partition of each topic it has a position on
    partitions = [[p for p in sorted(ends) if p[0] in reader.topics()] for reader in readers]
    unknown = {
        p
        for reader, mine in zip(readers, partitions, strict=True)
        for p in mine
        if p not in reader.positions
    }
    starts = await start_offsets(settings.kafka, sorted(unknown))
    report = []
    for reader, mine in zip(readers, partitions, strict=True):
        lags = [
            PartitionLag(
                p[0], p[1], reader.positions[p] if p in reader.positions else starts[p], ends[p]
            )
            for p in mine
        ]
        report.append((reader, lags))
    return report


async def consumer_groups(settings: Settings) -> list[Reader]:
    """Every consumer group with an offset committed on this deployment's topics.

    Offsets are asked per group with the partitions named (the embedded broker cannot answer
    the request without them)."""
    from aiokafka import TopicPartition

    from ringlog.streams.admin import admin_client, partition_counts

    prefix = settings.kafka.topic_prefix
    async with admin_client(settings.kafka) as admin:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        counts = await partition_counts(admin, names)
        tps = [TopicPartition(t, p) for t, n in sorted(counts.items()) for p in range(n)]
        groups = sorted(g for g, *_ in await admin.list_consumer_groups())
        if not tps:
            return []
        committed = await asyncio.gather(
            *(admin.list_consumer_group_offsets(g, partitions=tps) for g in groups)
        )
    readers = []
    for group, offsets in zip(groups, committed, strict=True):
        positions = {
            (tp.topic, tp.partition): o.offset for tp, o in offsets.items() if o.offset >= 0
        }
        if positions:
            readers.append(Reader(group, "group", "kafka", positions))
    return readers


def crm_checkpoints(settings: Settings) -> list[Reader]:
    """The checkpoints kept in the CRM database: the CRM projection's, the views' and the
    worker's (tables not created yet hold none)."""
    from sqlalchemy import inspect, select
    from sqlalchemy.engine import make_url

    from ringlog.projections.crm.schema import CHECKPOINTS as CRM
    from ringlog.projections.sql import sql_engine
    from ringlog.views.store import CHECKPOINTS as VIEWS
    from ringlog.worker.schema import CHECKPOINTS as WORKER

    url = make_url(settings.crm.url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return []  # nothing was ever written (and reading must not create the file)
    engine = sql_engine(settings.crm.url)
    rows: list[tuple[str, str, int, int]] = []
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            for table in (CRM, VIEWS, WORKER):
                if table.name in present:
                    c = table.c
                    query = select(c.projection, c.topic, c.partition, c.next_offset)
                    rows += [
                        (str(p), str(t), int(n), int(o)) for p, t, n, o in connection.execute(query)
                    ]
    finally:
        engine.dispose()
    return _readers(rows, settings.kafka.topic_prefix, "crm db")


def warehouse_checkpoints(settings: Settings) -> tuple[list[Reader], str | None]:
    """The warehouse projection's checkpoints, or a note saying why they could not be read."""
    import snowflake.connector
    from snowflake.connector.errors import Error

    from ringlog.cli.sql import address
    from ringlog.projections.retrying import describe
    from ringlog.projections.warehouse import connect_kwargs
    from ringlog.projections.warehouse.schema import CHECKPOINTS, q

    query = (
        f"SELECT {q('PROJECTION')}, {q('TOPIC')}, {q('PARTITION')}, {q('NEXT_OFFSET')} "
        f"FROM {q(CHECKPOINTS.name)}"
    )
    try:
        connection = snowflake.connector.connect(
            **connect_kwargs(settings.warehouse, login_timeout=5.0)
        )
    except Error as exc:
        return [], (
            f"warehouse at {address(settings)} does not answer ({describe(exc)}): its "
            "checkpoints are not shown; `ringlog dev status` shows what answers"
        )
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(query)
        except Error:  # no checkpoint table: the warehouse projection never wrote
            return [], None
        rows = [(str(p), str(t), int(n), int(o)) for p, t, n, o in cursor.fetchall()]
    finally:
        connection.close()
    return _readers(rows, settings.kafka.topic_prefix, "warehouse"), None


async def _nothing() -> tuple[list[Reader], str | None]:
    return [], None


def _readers(rows: Iterable[tuple[str, str, int, int]], prefix: str, store: str) -> list[Reader]:
    """Checkpoint rows ``(projection, topic, partition, next_offset)`` as readers, keeping
    this deployment's topics only."""
    by_name: dict[str, dict[Position, int]] = {}
    for projection, topic, partition, offset in rows:
        if topic.startswith(prefix):
            by_name.setdefault(projection, {})[(topic, int(partition))] = int(offset)
    return [Reader(n, "checkpoint", store, positions) for n, positions in sorted(by_name.items())]


def show(settings: Settings, report: Sequence[tuple[Reader, list[PartitionLag]]]) -> None:
    """One row per reader and topic (the lag of each partition, then the sums), and one total
    row per reader that reads several topics."""
    from rich.table import Table

    from ringlog.cli.output import console

    prefix = settings.kafka.topic_prefix
    table = Table(title=f"lag on {settings.kafka.bootstrap} (topics {prefix}*)")
    table.add_column("reader", overflow="fold")
    table.caption = "behind: partition:records not read yet, where any"
    for column in ("kept in", "topic", "behind"):
        table.add_column(column)
    for column in ("position", "end", "lag"):
        table.add_column(column, justify="right")
    total = 0
    for reader, lags in report:
        topics = sorted({p.topic for p in lags})
        for i, topic in enumerate(topics):
            rows = [p for p in lags if p.topic == topic]
            table.add_row(
                reader.name if i == 0 else "",
                ("group" if reader.kind == "group" else reader.store) if i == 0 else "",
                topic.removeprefix(prefix),
                " ".join(f"{p.partition}:{p.lag}" for p in rows if p.lag) or "-",
                str(sum(p.position for p in rows)),
                str(sum(p.end for p in rows)),
                _lag(sum(p.lag for p in rows)),
            )
        behind = sum(p.lag for p in lags)
        total += behind
        if len(topics) > 1:
            table.add_row("", "", "[b]all[/]", "", "", "", _lag(behind))
        table.add_section()
    console.print(table)
    console.print(f"{len(report)} reader(s), {total} record(s) behind in total")


def _lag(n: int) -> str:
    return f"[bold red]{n}[/]" if n else "0"


def _reader_json(reader: Reader, lags: Sequence[PartitionLag]) -> dict[str, Any]:
    return {
        "name": reader.name,
        "kind": reader.kind,
        "store": reader.store,
        "lag": sum(p.lag for p in lags),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "position": p.position,
                "end": p.end,
                "lag": p.lag,
            }
            for p in lags
        ],
    }

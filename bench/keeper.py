"""What the log keeper costs the embedded stack: raw produce and replay with the keeper
archiving and with it paused (SIGSTOP), its lag behind the writes, and a restart's restore.

``python -m bench keeper`` (or ``python -c "from bench import keeper; keeper.main(['100000'])"``)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ringlog import devstack
from ringlog.config import HOME_ENV, Settings
from ringlog.devstack.archive import LogArchive

PARTITIONS = 6
VALUE = b"x" * 300


async def produce(bootstrap: str, topic: str, n: int) -> float:
    """Create ``topic`` and write ``n`` keyed records, pipelined; return records/s."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = time.perf_counter()
        sent = [await producer.send(topic, VALUE, key=b"k%d" % i) for i in range(n)]
        await asyncio.gather(*sent)
        return n / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def replay(bootstrap: str, topic: str, n: int) -> float:
    """Read ``topic`` from its beginning to ``n`` records; return records/s."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        start = time.perf_counter()
        seen = 0
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(v) for v in batches.values())
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def archived(home: Path, topic: str) -> int:
    archive = LogArchive(home / "log")
    return sum(archive.next_offset(topic, p) for p in range(PARTITIONS))


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The keeper frozen (SIGSTOP) for the block, then let go."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def main(argv: list[str] | None = None) -> None:
    """Parse N and the rounds, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ringlog-bench-") as tmp:
        home = Path(tmp)
        os.environ[HOME_ENV] = str(home)
        try:
            state = devstack.up(Settings.load(), home=home)
            bootstrap = state["kafka"].address
            keeper = state["log-keeper"].process
            assert keeper is not None
            on: dict[str, list[float]] = {"produce": [], "replay": [], "lag": []}
            off: dict[str, list[float]] = {"produce": [], "replay": []}
            for _ in range(args.rounds):
                with paused(keeper.pid):
                    topic = f"bench-off-{uuid.uuid4().hex[:6]}"
                    off["produce"].append(asyncio.run(produce(bootstrap, topic, args.n)))
                    off["replay"].append(asyncio.run(replay(bootstrap, topic, args.n)))
                topic = f"bench-on-{uuid.uuid4().hex[:6]}"
                on["produce"].append(asyncio.run(produce(bootstrap, topic, args.n)))
                written = time.perf_counter()
                while archived(home, topic) < args.n:
                    time.sleep(0.01)
                on["lag"].append(time.perf_counter() - written)
                on["replay"].append(asyncio.run(replay(bootstrap, topic, args.n)))
            total = (2 * args.rounds) * args.n
            devstack.down(home=home)
            start = time.perf_counter()
            devstack.up(Settings.load(), home=home)
            restart_s = time.perf_counter() - start
        finally:
            devstack.down(home=home)
            os.environ.pop(HOME_ENV, None)
    med = statistics.median
    print(f"log keeper, N={args.n} records of {len(VALUE)} B, {args.rounds} rounds (medians)")
    print(f"{'':<22}{'keeper paused':>16}{'keeper on':>14}{'ratio':>8}")
    for what in ("produce", "replay"):
        a, b = med(off[what]), med(on[what])
        print(f"{what + ' rec/s':<22}{a:>16,.0f}{b:>14,.0f}{b / a:>8.2f}")
    print(f"archive lag after the last write: {med(on['lag']):.2f} s")
    print(
        f"restart with {total:,} records in the archive: {restart_s:.1f} s "
        f"({total / restart_s:,.0f} records/s restored, stack start included)"
    )


if __name__ == "__main__":
    main()

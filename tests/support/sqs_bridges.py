"""SQS in tests: queues of a test's own on the moto server, draining them, and a bridge in
that kills its own process between the log's acknowledgement and the delete.

``python -m tests.support.sqs_bridges --queue URL --as call-request`` runs the real
:class:`~ringlog.bridges.inbound.InboundBridge` (settings from the environment, as
``ringlog bridge sqs-in`` reads them) whose :meth:`on_appended` hook sends the process SIGKILL
the first time records were acknowledged: no delete, no visibility change, no clean-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ringlog.bridges.inbound import InboundBridge
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.messages import SqsMessage
from ringlog.bridges.sqs import SqsQueue, make_client
from ringlog.config import Settings, SqsSettings
from ringlog.streams.producer import LogProducer


class KilledAfterAppend(InboundBridge):
    """A bridge in whose process dies (SIGKILL) once its first records are acknowledged."""

    async def on_appended(self, messages: Sequence[SqsMessage]) -> None:
        print(f"appended {len(messages)}; killing myself before the delete", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


async def _killed_bridge(queue_url: str, kind: InboundKind) -> None:
    settings = Settings.load()
    queue = await SqsQueue.open(settings.sqs, queue_url)
    producer = LogProducer(settings.kafka)
    try:
        await KilledAfterAppend(settings, queue, kind, producer).run()
    finally:
        await producer.stop()
        queue.close()


class Queues:
    """Queues of one test on the SQS of ``sqs`` (moto): :meth:`make` one, all deleted by
    :meth:`close`; ``client`` is a boto3 client of the same endpoint."""

    def __init__(self, sqs: SqsSettings) -> None:
        self.client: Any = make_client(sqs)
        self._made: list[str] = []

    def make(self, *, fifo: bool = False, **attributes: str) -> str:
        """A new queue (FIFO when asked) with ``attributes``; its URL."""
        name = f"t-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        if fifo:
            attributes["FifoQueue"] = "true"
        url: str = self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self._made.append(url)
        return url

    def close(self) -> None:
        """Delete the queues made (those still there) and close the client."""
        for url in self._made:
            with contextlib.suppress(Exception):  # the test may have deleted it
                self.client.delete_queue(QueueUrl=url)
        self.client.close()


@contextmanager
def queues(sqs: SqsSettings) -> Iterator[Queues]:
    """:class:`Queues` for one test, cleaned up afterwards."""
    made = Queues(sqs)
    try:
        yield made
    finally:
        made.close()


def counts(client: Any, url: str) -> tuple[int, int]:
    """``(visible, in flight)`` messages of the queue, as SQS counts them."""
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def drain(client: Any, url: str, *, quiet_s: float = 1.5) -> list[dict[str, Any]]:
    """Receive and delete every message of the queue until it stays empty for ``quiet_s``;
    return them in the order received (with their attributes)."""
    found: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        answer = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            time.sleep(0.1)
            continue
        quiet_since = time.monotonic()
        found += messages
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return found


def send_all(client: Any, url: str, bodies: Sequence[str], **extra: Any) -> list[str]:
    """Send ``bodies`` in batches of 10; return their message ids in order."""
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        answer = client.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": b, **extra} for i, b in enumerate(chunk)],
        )
        assert not answer.get("Failed"), answer
        by_id = {s["Id"]: s["MessageId"] for s in answer["Successful"]}
        ids += [by_id[str(i)] for i in range(len(chunk))]
    return ids


def main() -> None:
    """Run :class:`KilledAfterAppend` on ``--queue`` as ``--as``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", required=True)
    parser.add_argument("--as", dest="kind", required=True, choices=[k.value for k in InboundKind])
    args = parser.parse_args()
    asyncio.run(_killed_bridge(args.queue, InboundKind(args.kind)))


if __name__ == "__main__":
    main()

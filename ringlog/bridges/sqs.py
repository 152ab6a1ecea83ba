"""One SQS queue through boto3: the thin I/O shell of the bridges.

Every boto3 call runs in a thread, never on the event loop. A long-poll receive runs in a
daemon thread of its own, so a stop does not wait up to a poll's 20 s for it (nor does the
interpreter at exit); messages a receive abandoned that way are made visible again if the poll
returns while the process lives, else after their visibility timeout — never lost.

Failures are sorted once (:mod:`ringlog.bridges.failures`): the network, throttling and
SQS's own 5xx are retried with backoff (tenacity, on top of botocore's own few retries); a
queue that does not exist, refused credentials or a refused request are not. Credentials come
from the settings or boto3's standard chain and are never logged (errors are described by
code and message).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from ringlog.bridges.entries import Offset, OutboundEntry
from ringlog.bridges.failures import SqsError, describe, is_missing_queue, is_transient
from ringlog.bridges.messages import SqsMessage
from ringlog.config import SqsSettings
from ringlog.errors import ConfigurationError, RinglogError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = structlog.get_logger("ringlog.bridges")

T = TypeVar("T")

#: Attempts of a delete or a visibility change before its failure is only logged (the
#: messages then come back after their visibility timeout and are deduplicated downstream).
_HOUSEKEEPING_ATTEMPTS = 5


def make_client(sqs: SqsSettings) -> SQSClient:
    """A boto3 SQS client for ``sqs``: its endpoint (else the region's), its keys (else the
    standard credential chain), botocore's standard retries, a read timeout above a poll."""
    if bool(sqs.access_key_id) != bool(sqs.secret_access_key):
        raise ConfigurationError(
            "RINGLOG_SQS_ACCESS_KEY_ID and RINGLOG_SQS_SECRET_ACCESS_KEY go together: set both, "
            "or neither to use boto3's standard credential chain"
        )
    options: dict[str, Any] = {
        "region_name": sqs.region,
        "endpoint_url": sqs.endpoint_url,
        "config": Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=sqs.receive_wait_s + 10,
            max_pool_connections=16,
        ),
    }
    if sqs.access_key_id and sqs.secret_access_key:
        options["aws_access_key_id"] = sqs.access_key_id
        options["aws_secret_access_key"] = sqs.secret_access_key.get_secret_value()
    client: SQSClient = boto3.session.Session().client("sqs", **options)
    return client


def queue_name_of(queue: str) -> str:
    """The queue's name, given its name or its URL (the URL's last path segment)."""
    return queue.rstrip("/").rsplit("/", 1)[-1]


def is_url(queue: str) -> bool:
    """Whether ``queue`` is a queue URL rather than a name."""
    return queue.startswith(("http://", "https://"))


def is_fifo(name: str) -> bool:
    """Whether the queue named ``name`` is a FIFO queue (SQS requires the ``.fifo`` suffix)."""
    return name.endswith(".fifo")


@dataclass(frozen=True)
class SendResult:
    """What one batch send did: the records SQS accepted, and the first it refused."""

    accepted: list[Offset]
    #: the first entry (in log order) SQS did not accept, and why
    failed: tuple[OutboundEntry, str] | None = None


class SqsQueue:
    """One queue: receive, delete, change visibility and send, each in a thread.

    Build with :meth:`open`, which checks the queue exists (or creates it when asked) and
    raises :class:`~ringlog.errors.ConfigurationError` naming it if not.
    """

    def __init__(self, client: SQSClient, url: str, *, sqs: SqsSettings, description: str) -> None:
        self.client = client
        self.url = url
        self.name = queue_name_of(url)
        self.fifo = is_fifo(self.name)
        self._sqs = sqs
        self._where = description

    @classmethod
    async def open(cls, sqs: SqsSettings, queue: str, *, create: bool = False) -> SqsQueue:
        """The queue ``queue`` (a name or a URL) at ``sqs``'s endpoint; with ``create``, made
        when missing (a FIFO queue for a ``.fifo`` name). ``ConfigurationError`` if it does not
        exist (and ``create`` is off), or SQS refuses the credentials."""
        client = make_client(sqs)
        where = sqs.endpoint_url or f"SQS in {sqs.region}"
        name = queue_name_of(queue)
        try:
            url = await _retried(lambda: cls._resolve(client, queue, name, create=create))
        except ClientError as exc:
            client.close()
            if is_missing_queue(exc):
                raise ConfigurationError(
                    f"SQS queue {queue!r} does not exist at {where}: create it, or fix --queue "
                    "(or the RINGLOG_SQS_*_QUEUE setting); nothing was received or deleted"
                ) from None
            raise ConfigurationError(
                f"SQS at {where} refused queue {queue!r}: {describe(exc)}"
            ) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            client.close()
            raise ConfigurationError(
                f"no AWS credentials for SQS at {where} ({type(exc).__name__}): set "
                "RINGLOG_SQS_ACCESS_KEY_ID and _SECRET_ACCESS_KEY, or configure boto3's "
                "standard chain (AWS_PROFILE, instance or container role)"
            ) from None
        except BotoCoreError as exc:
            client.close()
            raise ConfigurationError(f"SQS at {where} did not answer: {describe(exc)}") from None
        return cls(client, url, sqs=sqs, description=where)

    @staticmethod
    def _resolve(client: SQSClient, queue: str, name: str, *, create: bool) -> str:
        """The queue's URL, checked (or created); runs in a thread."""
        if create:
            if is_fifo(name):
                url = client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
            else:
                url = client.create_queue(QueueName=name)
            return queue if is_url(queue) else url["QueueUrl"]
        if is_url(queue):
            client.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
            return queue
        return client.get_queue_url(QueueName=name)["QueueUrl"]

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    # -- receiving --------------------------------------------------------------------------

    async def receive(self, *, max_messages: int = 10) -> list[SqsMessage]:
        """Long-poll for up to ``max_messages`` messages, each made invisible for the
        configured visibility timeout. Transient failures are retried without end (cancel to
        stop); a queue gone or a refused request raises."""

        def call() -> list[SqsMessage]:
            answer = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=self._sqs.receive_wait_s,
                VisibilityTimeout=self._sqs.visibility_timeout_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            return [SqsMessage.from_sqs(m) for m in answer.get("Messages", [])]

        def abandoned(messages: list[SqsMessage]) -> None:
            # the receive was given up (a stop) but SQS answered: hand the messages back
            if messages:
                self._change_visibility(messages, 0)

        try:
            return await _retried(
                call, daemon=True, on_abandoned=abandoned, sqs=self._sqs, attempts=None
            )
        except ClientError as exc:
            raise self._refused("receive from", exc) from None

    async def delete(self, messages: Sequence[SqsMessage]) -> list[str]:
        """Delete ``messages`` (batches of 10); return the ids SQS did not delete."""
        failed: list[str] = []
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                failed += await _retried(
                    functools.partial(self._delete, chunk),
                    sqs=self._sqs,
                    attempts=_HOUSEKEEPING_ATTEMPTS,
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("delete failed", queue=self.name, error=describe(exc))
                failed += [m.message_id for m in chunk]
        return failed

    def _delete(self, messages: Sequence[SqsMessage]) -> list[str]:
        answer = self.client.delete_message_batch(
            QueueUrl=self.url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)
            ],
        )
        return [messages[int(f["Id"])].message_id for f in answer.get("Failed", [])]

    async def change_visibility(self, messages: Sequence[SqsMessage], seconds: int) -> None:
        """Make ``messages`` invisible for ``seconds`` more (0: visible now); failures are
        logged (a message deleted meanwhile, a receipt expired), never raised."""
        if not messages:
            return
        try:
            await _retried(
                lambda: self._change_visibility(messages, seconds),
                sqs=self._sqs,
                attempts=_HOUSEKEEPING_ATTEMPTS,
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("visibility not changed", queue=self.name, error=describe(exc))

    def _change_visibility(self, messages: Sequence[SqsMessage], seconds: int) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                    for i, m in enumerate(chunk)
                ],
            )

    # -- sending ----------------------------------------------------------------------------

    async def send(self, entries: Sequence[OutboundEntry]) -> SendResult:
        """Send up to 10 entries in one request, once (the caller retries); in a thread.

        When SQS refuses the whole request for something an entry holds (e.g. a body over the
        queue's size limit), the entries are sent one by one, in order, up to the one at fault,
        so everything before it is delivered and nothing after it is sent."""
        return await asyncio.to_thread(self._send, entries)

    def _send(self, entries: Sequence[OutboundEntry]) -> SendResult:
        try:
            answer = self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    cast("SendMessageBatchRequestEntryTypeDef", e.request(str(i)))
                    for i, e in enumerate(entries)
                ],
            )
        except ClientError as exc:
            if len(entries) > 1 and not is_transient(exc) and not is_missing_queue(exc):
                return self._send_one_by_one(entries)
            return SendResult([], (entries[0], describe(exc)))
        except (BotoCoreError, OSError) as exc:
            return SendResult([], (entries[0], describe(exc)))
        accepted = [entries[int(s["Id"])].where for s in answer.get("Successful", [])]
        failures = sorted(answer.get("Failed", []), key=lambda f: int(f["Id"]))
        if not failures:
            return SendResult(accepted)
        first = failures[0]
        reason = f"{first.get('Code', 'error')}: {first.get('Message', '')}".rstrip(": ")
        return SendResult(accepted, (entries[int(first["Id"])], reason))

    def _send_one_by_one(self, entries: Sequence[OutboundEntry]) -> SendResult:
        accepted: list[Offset] = []
        for entry in entries:
            result = self._send([entry])
            accepted += result.accepted
            if result.failed is not None:
                return SendResult(accepted, result.failed)
        return SendResult(accepted)

    def _refused(self, action: str, exc: ClientError) -> RinglogError:
        if is_missing_queue(exc):
            return ConfigurationError(
                f"SQS queue {self.url} no longer exists at {self._where}; cannot {action} it"
            )
        return SqsError(f"SQS refused to {action} queue {self.url}: {describe(exc)}")


async def _retried(
    call: Callable[[], T],
    *,
    sqs: SqsSettings | None = None,
    attempts: int | None = 3,
    daemon: bool = False,
    on_abandoned: Callable[[T], None] | None = None,
) -> T:
    """``call()`` in a thread, its transient failures retried with exponential backoff:
    ``attempts`` times in all, or without end when ``None`` (cancel to stop)."""
    backoff, cap = (sqs.backoff_s, sqs.backoff_max_s) if sqs is not None else (0.2, 2.0)
    retrying = AsyncRetrying(
        stop=stop_never if attempts is None else stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, max=cap),
        retry=retry_if_exception(is_transient),
        before_sleep=_retry_logged,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if daemon:
                return await _in_daemon_thread(call, on_abandoned)
            return await asyncio.to_thread(call)
    raise AssertionError("unreachable: tenacity re-raises the last failure")


def _retry_logged(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning(
        "SQS call failed, retrying",
        attempt=state.attempt_number,
        error=None if error is None else describe(error),
    )


async def _in_daemon_thread(call: Callable[[], T], on_abandoned: Callable[[T], None] | None) -> T:
    """``call()`` in a new daemon thread. If the awaiting task is cancelled first, the call's
    result, when it comes, goes to ``on_abandoned`` (in that thread) instead."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled: nobody waits for it any more
            if error is None and on_abandoned is not None:
                threading.Thread(target=_quietly, args=(on_abandoned, result), daemon=True).start()
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))

    def work() -> None:
        try:
            result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: the process is stopping
            if outcome[1] is None and on_abandoned is not None:
                _quietly(on_abandoned, cast(T, outcome[0]))

    threading.Thread(target=work, name="sqs-receive", daemon=True).start()
    return await future


def _quietly(callback: Callable[[T], None], value: T | None) -> None:
    try:
        callback(cast(T, value))
    except Exception as exc:  # noqa: BLE001 - best effort on the way out
        log.debug("abandoned receive not handed back", error=describe(exc))

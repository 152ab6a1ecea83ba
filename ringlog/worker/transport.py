"""faust's Kafka transport with the consumer's fetch wait taken from settings.

faust's aiokafka driver fixes ``fetch_max_wait_ms`` at 1500 ms. Kafka answers a waiting fetch as
soon as records arrive, so that is harmless there, but the embedded Tansu broker answers only
after about half the wait: every faust hop cost ~750 ms. This transport builds the same consumer
and then applies :attr:`ringlog.config.KafkaSettings.fetch_max_wait_ms`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: ClassVar[int] = 500

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


def transport_for(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """A faust Kafka transport class whose consumers wait at most ``fetch_max_wait_ms``."""
    thread: type[_ConsumerThread] = type(
        "ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms}
    )

    class TunedConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)

    class TunedTransport(faust_aiokafka.Transport):
        Consumer = TunedConsumer

    return TunedTransport


class WorkerApp(faust.App):
    """A faust app whose consumer uses :func:`transport_for` with the configured fetch wait."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._transport_class = transport_for(fetch_max_wait_ms)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return self._transport_class(self.conf.broker_consumer, self)

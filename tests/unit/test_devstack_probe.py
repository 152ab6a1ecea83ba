"""Probing a part's address: ``host:port``, URLs with and without a port, nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ringlog.devstack.parts import probe


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on the loopback that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_an_address_or_url_with_a_port_that_listens_answers(listening: int) -> None:
    assert probe("kafka", f"127.0.0.1:{listening}")
    assert probe("sqs", f"http://127.0.0.1:{listening}")
    assert probe("warehouse", f"https://127.0.0.1:{listening}/")


def test_a_url_without_a_port_is_probed_on_its_schemes_port_and_never_raises() -> None:
    # nothing listens on the loopback's port 443 here: the probe says no rather than failing
    assert probe("sqs", "https://127.0.0.1") is False
    assert probe("log-keeper", "") is False

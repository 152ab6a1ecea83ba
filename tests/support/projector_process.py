"""``ringlog projector`` as a child process that tests can freeze and kill, and a tap in front
of the warehouse that stops a projector inside its transaction at a chosen statement.

:class:`ProjectorProcess` runs the real CLI (``python -m ringlog projector``) with the
environment given, its output in a log file. :class:`SnowflakeTap` is a TCP forwarder that
reads the HTTP requests the Snowflake connector sends (``/queries/v1/query-request`` carries
one SQL statement) and, when armed, *holds* the first statement that matches: that request is
never forwarded, so on the server the session's transaction is open with every earlier
statement applied and the held one not run, for as long as the test wants.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

__all__ = ["Held", "ProjectorProcess", "SnowflakeTap"]


class ProjectorProcess:
    """``ringlog projector [--only …]`` in a child process with ``env`` (added to this
    process's environment); output appended to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, only: str | None) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.args = ["--only", only] if only else []
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running child's pid."""
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> None:
        """Start a new child (the previous one must be gone)."""
        assert self._process is None or self._process.poll() is not None, "still running"
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ringlog", "projector", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def freeze(self) -> None:
        """SIGSTOP: the process sends nothing more (no COMMIT) until thawed or killed."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap: no shutdown, no rollback, no commit of any kind."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (a clean stop), SIGKILL if it does not exit in time; return the exit status."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)  # in case it was left frozen
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    def output(self, tail: int = 4000) -> str:
        """The end of what every child of this object printed."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]


@dataclass
class Held:
    """The statement a :class:`SnowflakeTap` held, and what the session ran before it."""

    statement: str
    #: the statements of the held request's transaction already run, from ``BEGIN`` on
    transaction: list[str]
    #: the session's ``Authorization`` header (the server-side session, for clean-up)
    authorization: str


class SnowflakeTap:
    """Forwards 127.0.0.1:``port`` to the warehouse at ``host:port``, reading every request.

    :meth:`hold` arms it with a predicate over the SQL text; the first matching statement
    sent inside an explicit transaction is held (never forwarded) and :meth:`wait_held`
    returns it. The held connection stays open until the client goes away (e.g. is killed).
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._predicate: Callable[[str], bool] | None = None
        self._held: Held | None = None
        self._held_event = threading.Event()
        self._closed = False
        #: every session (``Authorization`` header) seen, for :meth:`end_sessions`
        self.sessions: set[str] = set()
        #: per session, the statements of its open explicit transaction (from ``BEGIN`` on)
        self._transactions: dict[str, list[str]] = {}
        threading.Thread(target=self._accept, daemon=True, name=f"tap:{self.port}").start()

    # -- control -------------------------------------------------------------------------------

    def hold(self, predicate: Callable[[str], bool]) -> None:
        """Hold the next statement, sent inside a transaction, for which ``predicate`` is true."""
        with self._lock:
            self._predicate = predicate
            self._held = None
            self._held_event.clear()

    def wait_held(self, timeout_s: float) -> Held:
        """Block until a statement is held; ``AssertionError`` after ``timeout_s``."""
        if not self._held_event.wait(timeout_s):
            raise AssertionError(f"no statement was held within {timeout_s}s")
        assert self._held is not None
        return self._held

    def session_answers(self, authorization: str) -> bool:
        """Whether the server still runs statements for this session (``SELECT 1``): a
        session whose client was killed, still open there."""
        try:
            answer = self._post(authorization, "/queries/v1/query-request", {"sqlText": "SELECT 1"})
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and bool(answer.json().get("success"))

    def end_sessions(self) -> list[str]:
        """Roll back and log out every session seen (killed clients leave theirs open on the
        server); return what the server answered. Call only when no client is running."""
        answers = []
        for auth in sorted(self.sessions):
            try:
                rolled = self._post(auth, "/queries/v1/query-request", {"sqlText": "ROLLBACK"})
                ended = self._post(auth, "/session?delete=true", {})
                answers.append(f"{rolled.status_code}/{ended.status_code}")
            except httpx.HTTPError as exc:
                answers.append(f"{type(exc).__name__}: {exc}")
        return answers

    def _post(self, authorization: str, path: str, body: Mapping[str, str]) -> httpx.Response:
        """One request straight to the server (not through the tap) as that session."""
        host, port = self.upstream
        headers = {"Authorization": authorization}
        return httpx.post(f"http://{host}:{port}{path}", json=body, headers=headers, timeout=10)

    def close(self) -> None:
        """Stop accepting and cut every connection."""
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    # -- forwarding ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._sockets.add(sock)
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            if not self._track(client):
                return
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            if not self._track(upstream):
                return
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            reader = client.makefile("rb")
            while request := _read_request(reader):
                head, body = request
                if self._held_here(head, body):
                    while reader.read(65536):  # keep the request pending until the client dies
                        pass
                    return
                upstream.sendall(head + body)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
                    with self._lock:
                        self._sockets.discard(sock)

    def _held_here(self, head: bytes, body: bytes) -> bool:
        """Note the statement in its session's transaction; return whether to hold it."""
        headers = _headers(head)
        statement = _statement(head, headers, body)
        if statement is None:
            return False
        auth = headers.get("authorization", "")
        normal = " ".join(statement.split()).upper()
        with self._lock:
            if auth:
                self.sessions.add(auth)
            if normal in ("BEGIN", "BEGIN TRANSACTION", "START TRANSACTION"):
                self._transactions[auth] = [statement]
                return False
            transaction = self._transactions.get(auth)
            if not transaction:
                return False
            if self._predicate is not None and self._predicate(statement):
                self._predicate = None
                self._held = Held(statement, list(transaction), auth)
                self._held_event.set()
                return True
            if normal in ("COMMIT", "ROLLBACK"):
                del self._transactions[auth]
            else:
                transaction.append(statement)
            return False


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either side closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _read_request(reader: IO[bytes]) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 request (head with its blank line, body) or ``None`` at end of stream."""
    lines = []
    while True:
        line = reader.readline()
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    head = b"".join(lines)
    headers = _headers(head)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise AssertionError("the tap does not read chunked request bodies")
    length = int(headers.get("content-length", "0"))
    body = reader.read(length) if length else b""
    if len(body) < length:
        return None
    return head, body


def _headers(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    return found


def _statement(head: bytes, headers: Mapping[str, str], body: bytes) -> str | None:
    """The SQL text of a query request, else ``None``."""
    if b"/queries/v1/query-request" not in head.split(b"\r\n", 1)[0]:
        return None
    if headers.get("content-encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    try:
        text = json.loads(body)["sqlText"]
    except (ValueError, KeyError, TypeError):
        return None
    return text if isinstance(text, str) else None

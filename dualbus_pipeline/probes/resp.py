"""A lean, blocking RESP2 client for timing-critical bus probes.

redis-py adds ~2x to a loopback PING (connection pool, command packing, response callbacks);
this client is a socket with TCP_NODELAY, commands packed once and reused, and hiredis'
C parser. It handles redis:// and rediss:// (TLS) URLs with user/password (AUTH) and a
database number (SELECT). Every socket operation has a timeout (``timeout_s``).

It is used from probe threads only (blocking I/O keeps the measured path free of event-loop
wake-ups); one instance is never shared between threads.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

Reply = Any  # bytes | int | list[Reply] | hiredis.ReplyError | None


class RespError(Exception):
    """A Redis error reply (e.g. ``NOGROUP``, ``WRONGTYPE``)."""


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    db: int

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        path = parts.path.lstrip("/")
        db = int(path) if path.isdigit() else 0
        return cls(host=parts.hostname or "localhost", port=parts.port or 6379,
                   tls=parts.scheme == "rediss",
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   db=db)


def pack(*args: str | bytes | int | float) -> bytes:
    """Encode one command in RESP (done once per command shape, outside timed loops)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


PING = pack("PING")


def connect_error_text(exc: BaseException) -> str:
    """A short reason for a failed sample: "refused", "timeout", "reset", ..."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(exc, EOFError):
        return "connection closed"
    if isinstance(exc, RespError):
        return f"redis error: {str(exc)[:120]}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


class RespConnection:
    """One blocking connection. ``call`` for ordinary commands; ``send``/``read`` for pipelines."""

    def __init__(self, target: RedisTarget, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._recv_size = 1 << 16

    @classmethod
    def open(cls, url: str, timeout_s: float) -> RespConnection:
        conn = cls(RedisTarget.from_url(url), timeout_s)
        conn.connect()
        return conn

    def connect(self) -> None:
        self.close()
        t = self.target
        raw = socket.create_connection((t.host, t.port), timeout=self.timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        if t.tls:
            ctx = ssl.create_default_context()
            try:
                sock = ctx.wrap_socket(raw, server_hostname=t.host)
            except BaseException:
                raw.close()
                raise
        sock.settimeout(self.timeout_s)
        self._sock = sock
        self._reader = hiredis.Reader()
        try:
            if t.password is not None:
                args: tuple[str, ...] = ((t.username, t.password) if t.username
                                         else (t.password,))
                self.call("AUTH", *args)
            if t.db:
                self.call("SELECT", t.db)
        except BaseException:
            self.close()
            raise

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def set_timeout(self, timeout_s: float | None) -> None:
        if self._sock is not None:
            self._sock.settimeout(timeout_s)

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionResetError("not connected")
        try:
            self._sock.sendall(data)
        except BaseException:
            self.close()
            raise

    def read(self) -> Reply:
        """Read one reply; raises RespError on an error reply, EOFError/OSError on I/O."""
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            sock = self._sock
            if sock is None:
                raise ConnectionResetError("not connected")
            try:
                data = sock.recv(self._recv_size)
            except BaseException:
                self.close()
                raise
            if not data:
                self.close()
                raise EOFError("connection closed by the server")
            reader.feed(data)
            reply = reader.gets()
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    def read_many(self, n: int) -> int:
        """Read ``n`` replies, discarding them; return how many were error replies."""
        errors = 0
        reader = self._reader
        left = n
        while left:
            reply = reader.gets()
            if reply is False:
                sock = self._sock
                if sock is None:
                    raise ConnectionResetError("not connected")
                try:
                    data = sock.recv(self._recv_size)
                except BaseException:
                    self.close()
                    raise
                if not data:
                    self.close()
                    raise EOFError("connection closed by the server")
                reader.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                errors += 1
            left -= 1
        return errors

    def call(self, *args: str | bytes | int | float) -> Reply:
        self.send(pack(*args))
        return self.read()

    def atomic(self, *commands: tuple[str | bytes | int | float, ...]) -> list[Reply]:
        """MULTI … EXEC in one write: e.g. create a probe key and its EXPIRE with no window in
        which the key exists without a TTL."""
        self.send(pack("MULTI") + b"".join(pack(*c) for c in commands) + pack("EXEC"))
        for _ in range(len(commands) + 1):
            self.read()  # +OK, +QUEUED ...; a queueing error raises here
        replies = self.read()
        errors = [r for r in replies or [] if isinstance(r, hiredis.ReplyError)]
        if errors:
            raise RespError(str(errors[0]))
        return list(replies or [])

    def call_packed(self, packed: bytes) -> Reply:
        self.send(packed)
        return self.read()

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pairs_to_dict(flat: list[Any]) -> dict[str, Any]:
    """RESP2 flat [k1, v1, k2, v2, ...] → {k1: v1, ...} with str keys."""
    out: dict[str, Any] = {}
    for i in range(0, len(flat) - 1, 2):
        k = flat[i]
        out[k.decode() if isinstance(k, bytes) else str(k)] = flat[i + 1]
    return out

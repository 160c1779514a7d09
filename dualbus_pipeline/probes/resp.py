"""A lean, blocking RESP2 client for timing-critical bus probes.

redis-py adds ~2x to a loopback PING (connection pool, command packing, response callbacks);
this client is a socket with TCP_NODELAY, commands packed once and reused, and hiredis'
C parser. It handles redis:// and rediss:// (TLS) URLs with user/password (AUTH) and a
database number (SELECT). Every socket operation has a timeout (``timeout_s``), the TLS
handshake included.

TLS options travel in the URL query with redis-py's names, so one URL string configures the
probe, its burst child process and a redis-py client alike (docs/security.md):
``ssl_ca_certs`` (CA bundle to verify the server; default: the system store),
``ssl_cert_reqs=none`` (no verification; testing only), ``ssl_check_hostname=false`` and
``ssl_certfile``/``ssl_keyfile`` (client certificate when the server requires one).

It is used from probe threads only (blocking I/O keeps the measured path free of event-loop
wake-ups); one instance is never shared between threads.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import hiredis

Reply = Any  # bytes | int | list[Reply] | hiredis.ReplyError | None


class RespError(Exception):
    """A Redis error reply (e.g. ``NOGROUP``, ``WRONGTYPE``)."""


class AuthError(RespError):
    """The server refused our credentials (WRONGPASS, NOAUTH...)."""


class NoReplyError(EOFError):
    """The server closed or reset a plain connection before answering anything: typically a
    TLS-only port spoken to with redis://."""


class TlsHandshakeTimeout(TimeoutError):
    """No TLS handshake answer in time: typically a plain port spoken to with rediss://."""


TLS_PARAMS = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_check_hostname", "ssl_certfile",
              "ssl_keyfile")
_AUTH_MARKERS = ("WRONGPASS", "NOAUTH", "INVALID PASSWORD", "INVALID USERNAME-PASSWORD",
                 "WITHOUT ANY PASSWORD CONFIGURED")


def is_auth_error(message: str) -> bool:
    upper = message.upper()
    return any(m in upper for m in _AUTH_MARKERS)


@dataclass(frozen=True)
class TlsOptions:
    ca_certs: str | None = None
    verify: bool = True
    check_hostname: bool = True
    certfile: str | None = None
    keyfile: str | None = None

    @classmethod
    def from_query(cls, query: str) -> TlsOptions:
        """Parse the TLS query parameters of a rediss:// URL; ValueError on a bad one."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(params) - set(TLS_PARAMS))
        if unknown:
            raise ValueError(f"unknown URL parameter {unknown[0]!r} "
                             f"(allowed: {', '.join(TLS_PARAMS)})")
        reqs = params.get("ssl_cert_reqs", "required").lower()
        if reqs not in ("required", "none"):
            raise ValueError(f"ssl_cert_reqs must be 'required' or 'none' (got {reqs!r})")
        hostname = params.get("ssl_check_hostname", "true").lower()
        if hostname not in ("true", "false"):
            raise ValueError(f"ssl_check_hostname must be true or false (got {hostname!r})")
        return cls(ca_certs=params.get("ssl_ca_certs") or None, verify=reqs == "required",
                   check_hostname=reqs == "required" and hostname == "true",
                   certfile=params.get("ssl_certfile") or None,
                   keyfile=params.get("ssl_keyfile") or None)

    def context(self) -> ssl.SSLContext:
        return _tls_context(self)


@functools.lru_cache(maxsize=32)
def _tls_context(opts: TlsOptions) -> ssl.SSLContext:
    """One context per option set: loading the CA store costs milliseconds per connect."""
    ctx = ssl.create_default_context(cafile=opts.ca_certs)
    ctx.check_hostname = opts.check_hostname
    if not opts.verify:
        ctx.verify_mode = ssl.CERT_NONE
    if opts.certfile:
        ctx.load_cert_chain(opts.certfile, opts.keyfile)
    return ctx


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    db: int
    tls_options: TlsOptions = TlsOptions()

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        path = parts.path.lstrip("/")
        db = int(path) if path.isdigit() else 0
        return cls(host=parts.hostname or "localhost", port=parts.port or 6379,
                   tls=parts.scheme == "rediss",
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   db=db, tls_options=TlsOptions.from_query(parts.query))


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
    if isinstance(exc, TlsHandshakeTimeout):
        return "tls handshake timed out (is TLS enabled on that port? use redis:// if not)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(exc, NoReplyError):
        # Seen both on a TLS-only port spoken to in plain text and on a bus going down.
        return f"{exc} (bus going down, or a TLS-only port? then use rediss://)"
    if isinstance(exc, EOFError):
        return "connection closed"
    if isinstance(exc, AuthError) or (isinstance(exc, RespError) and is_auth_error(str(exc))):
        return f"auth failed: {str(exc)[:120]}"
    if isinstance(exc, RespError):
        if str(exc).upper().startswith("NOPERM"):
            return f"permission denied (ACL): {str(exc)[:120]}"
        return f"redis error: {str(exc)[:120]}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verification failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                      "UNEXPECTED_EOF_WHILE_READING", "HTTP_REQUEST"):
            return f"tls handshake failed ({reason}): is TLS enabled on that port?"
        return f"tls: {reason}"
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
        self._answered = False

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
            try:  # the handshake runs under raw's timeout: bounded like every other call
                sock = t.tls_options.context().wrap_socket(raw, server_hostname=t.host)
            except TimeoutError:
                raw.close()
                raise TlsHandshakeTimeout("tls handshake timed out") from None
            except BaseException:
                raw.close()
                raise
        sock.settimeout(self.timeout_s)
        self._sock = sock
        self._reader = hiredis.Reader()
        self._answered = False
        try:
            if t.password is not None:
                args: tuple[str, ...] = ((t.username, t.password) if t.username
                                         else (t.password,))
                try:
                    self.call("AUTH", *args)
                except RespError as exc:  # never echo the credentials, only the server's word
                    raise AuthError(str(exc)[:200]) from None
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
            except ConnectionResetError:
                self.close()
                if not self._answered and not self.target.tls:
                    raise NoReplyError("connection reset before any reply") from None
                raise
            except BaseException:
                self.close()
                raise
            if not data:
                self.close()
                if not self._answered and not self.target.tls:
                    raise NoReplyError("connection closed before any reply")
                raise EOFError("connection closed by the server")
            self._answered = True
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
                self._answered = True
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

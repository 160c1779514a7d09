"""A lean HTTP/1.1 keep-alive GET client: a sans-IO response parser plus an asyncio Protocol.

aiohttp's client adds ~0.15 ms to a loopback request (measured: 0.30 ms vs wrk's 0.14 ms);
this client writes one preallocated request and parses the response in ``data_received``,
where the completion time is taken. It understands Content-Length, chunked transfer coding
and read-until-close bodies, HTTP/1.0 and ``Connection: close``. TLS (https) goes through
asyncio's SSL transport unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


class HttpParseError(Exception):
    pass


def build_get(host: str, port: int, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: dualbus-probe\r\n"
            "Accept: application/json, */*\r\n\r\n").encode("latin-1")


class ResponseParser:
    """Feed bytes; ``done`` turns True once one full response is parsed."""

    def __init__(self, head_request: bool = False) -> None:
        self._buf = bytearray()
        self._head_request = head_request
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.keep_alive = True
        self.done = False
        # head | length | chunk_size | chunk_data | chunk_crlf | trailers | close
        self._mode = "head"
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._advance()

    def feed_eof(self) -> None:
        """The peer closed: completes a read-until-close body, else it is an error."""
        if self.done:
            return
        if self._mode == "close":
            self.body += self._buf
            self._buf.clear()
            self.done = True
            self.keep_alive = False
            return
        raise HttpParseError("connection closed before the response was complete")

    def _advance(self) -> None:
        buf = self._buf
        while not self.done:
            mode = self._mode
            if mode == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise HttpParseError("response headers too large")
                    return
                self._parse_head(bytes(buf[:end]))
                del buf[:end + 4]
            elif mode == "length":
                take = min(self._remaining, len(buf))
                self._append(buf[:take])
                del buf[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self.done = True
                else:
                    return
            elif mode == "chunk_size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[:end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise HttpParseError(f"bad chunk size {line!r}") from None
                if size == 0:
                    self._mode = "trailers"
                else:
                    self._remaining = size
                    self._mode = "chunk_data"
            elif mode == "chunk_data":
                take = min(self._remaining, len(buf))
                self._append(buf[:take])
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return
                self._mode = "chunk_crlf"
            elif mode == "chunk_crlf":
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise HttpParseError("missing CRLF after a chunk")
                del buf[:2]
                self._mode = "chunk_size"
            elif mode == "trailers":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[:end + 2]
                if end == 0:  # the empty line that ends the trailers
                    self.done = True
            else:  # close: everything until EOF is the body
                self._append(buf)
                buf.clear()
                return

    def _append(self, data: bytes | bytearray) -> None:
        if len(self.body) + len(data) > MAX_BODY_BYTES:
            raise HttpParseError("response body too large")
        self.body += data

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HttpParseError(f"bad status line {lines[0][:80]!r}")
        version, status = parts[0], int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:  # interim response: the real one follows
            return
        self.status = status
        self.headers = headers
        conn = headers.get("connection", "").lower()
        self.keep_alive = ("close" not in conn) if version == "HTTP/1.1" else (
            "keep-alive" in conn)
        if self._head_request or status in (204, 304):
            self.done = True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = "chunk_size"
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise HttpParseError("bad Content-Length") from None
            self._mode = "length"
            if self._remaining == 0:
                self.done = True
        else:
            self._mode = "close"
            self.keep_alive = False


Response = tuple[int, int, bytes, bool]  # done_ns, status, body, keep_alive


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._fut: asyncio.Future[Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None and self._fut is None
        self._parser = ResponseParser()
        self._fut = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._fut

    @property
    def busy(self) -> bool:
        return self._fut is not None

    def data_received(self, data: bytes) -> None:
        t = self._clock()
        parser, fut = self._parser, self._fut
        if parser is None or fut is None:
            self.abort()  # bytes nobody asked for: the connection is unusable
            return
        try:
            parser.feed(data)
        except HttpParseError as exc:
            self._fail(exc)
            self.abort()
            return
        if parser.done:
            self._fut = self._parser = None
            if not fut.done():
                fut.set_result((t, parser.status, bytes(parser.body), parser.keep_alive))
            if not parser.keep_alive:
                self.abort()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the request

    def connection_lost(self, exc: Exception | None) -> None:
        t = self._clock()
        self.closed = True
        parser, fut = self._parser, self._fut
        self._parser = self._fut = None
        if parser is None or fut is None or fut.done():
            return
        try:
            parser.feed_eof()
        except HttpParseError as err:
            fut.set_exception(ConnectionResetError(str(err)))
            return
        fut.set_result((t, parser.status, bytes(parser.body), False))

    def _fail(self, exc: Exception) -> None:
        fut = self._fut
        self._fut = self._parser = None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

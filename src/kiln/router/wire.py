"""HTTP/1.1 framing for the router: httptools parsers fed from asyncio streams.

Every request and response byte the router reads goes through httptools; this
module must never hand-parse HTTP. It knows nothing about routes or fleets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import httptools

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

Headers = list[tuple[bytes, bytes]]


class BadRequest(Exception):
    """The client sent something the router will not forward; answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Request:
    method: bytes
    url: bytes
    version: str  # "1.0" or "1.1"
    headers: Headers
    keep_alive: bool = True
    body: bytearray = field(default_factory=bytearray)


def connection_tokens(headers: Headers) -> set[bytes]:
    """Header names the sender listed in ``Connection``: hop-by-hop for this hop only."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def end_to_end(headers: Headers, drop: frozenset[bytes] = frozenset()) -> Headers:
    """The headers a proxy forwards: hop-by-hop ones (RFC 9110 7.6.1) and ``drop`` removed."""
    listed = connection_tokens(headers)
    return [
        (n, v)
        for n, v in headers
        if (low := n.lower()) not in HOP_BY_HOP and low not in listed and low not in drop
    ]


def header(headers: Headers, name: bytes) -> bytes | None:
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


def simple_response(status: int, reason: str, body: str, *, close: bool) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(data)}\r\n"
    )
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + data


class RequestReader:
    """Turns a client's byte stream into complete requests, bodies buffered.

    Bodies are buffered (up to ``max_body``) so a request can be replayed on
    another backend when a connection fails before the backend answered.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._ready: deque[Request] = deque()
        self._url = bytearray()
        self._headers: Headers = []
        self._current: Request | None = None
        self._too_large = False

    @property
    def mid_request(self) -> bool:
        return self._current is not None

    async def next_request(self, idle_timeout: float) -> Request | None:
        """The next complete request, or None when the client closed or stayed idle."""
        while not self._ready:
            try:
                data = await asyncio.wait_for(self._reader.read(65536), idle_timeout)
            except (TimeoutError, ConnectionError):
                return None
            if not data:
                return None
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                raise BadRequest(501, "protocol upgrades are not supported") from exc
            except httptools.HttpParserError as exc:
                raise BadRequest(400, f"malformed request: {exc}") from exc
            if self._too_large:
                raise BadRequest(413, f"request body larger than {self._max_body} bytes")
        return self._ready.popleft()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        version = self._parser.get_http_version()
        self._current = Request(
            method=self._parser.get_method(),
            url=bytes(self._url),
            version=version,
            headers=self._headers,
        )
        expect = header(self._headers, b"expect")
        if expect is not None and expect.lower() == b"100-continue" and version == "1.1":
            # The body is buffered here, so the router itself invites the client to send it.
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        if len(self._current.body) + len(body) > self._max_body:
            self._too_large = True
            return
        self._current.body += body

    def on_message_complete(self) -> None:
        assert self._current is not None
        self._current.keep_alive = self._parser.should_keep_alive()
        self._ready.append(self._current)
        self._current = None


class ResponseParse:
    """httptools callbacks for one backend response; the caller reads the fields."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = bytearray()
        self.headers: Headers = []
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.got_bytes = False

    def feed(self, data: bytes) -> None:
        self.got_bytes = True
        self.parser.feed_data(data)

    def take_body(self) -> list[bytes]:
        body, self.body = self.body, []
        return body

    def on_message_begin(self) -> None:
        self.reason.clear()
        self.headers = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        # An interim 1xx answer is swallowed: the client already got its 100 Continue.
        if status >= 200 or status == 101:
            self.status = status
            self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()


class Connections:
    """Open connections of one server, so shutdown can close them and let handlers end."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[object], asyncio.StreamWriter] = {}

    def add(self, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._open[task] = writer

    def discard(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._open.pop(task, None)

    async def close_all(self, timeout: float = 2.0) -> None:
        # Closing the transport ends each handler's read with EOF, so handlers return
        # normally instead of being cancelled by the loop's teardown.
        for writer in self._open.values():
            writer.close()
        tasks = list(self._open)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()

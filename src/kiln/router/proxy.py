"""The data plane: forwards each client request to a backend of a weighted fleet.

One coroutine per client connection reads requests in order (keep-alive and
pipelining), picks a fleet with the table current when the request starts,
then a backend, and streams the backend's answer back.

Steering: a request whose route header (``Route.header``, ``X-Kiln-Fleet`` by
default, name case-insensitive) names a fleet's ``role`` or fleet id goes to
that fleet whatever its weight, 0 included, if it has backends; any other value
falls through to the weighted choice, so testers who keep sending
``X-Kiln-Fleet: canary`` after a promotion are still served. It is counted in
the per-fleet metrics like any request.

This module must never change the table or the listeners; ``RouterState`` does
that and calls ``set_table``. Errors of a backend become 502/504 answers, never
exceptions that escape a connection's coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time

import httptools

from kiln.model.route import STEERED, FleetRoute, Route, RouteTable
from kiln.router.counters import Counters, FleetCounter
from kiln.router.pool import BackendConn, ConnectFailed, Pool
from kiln.router.wire import (
    BadRequest,
    Connections,
    Request,
    RequestReader,
    ResponseParse,
    end_to_end,
    header,
    simple_response,
)

log = logging.getLogger(__name__)

# Generous: a slow backend answer is not the router's to judge. The variable exists for tests.
RESPONSE_TIMEOUT = float(os.environ.get("KILN_ROUTER_RESPONSE_TIMEOUT", "60"))
CONNECT_TIMEOUT = 5.0
CLIENT_IDLE_TIMEOUT = 75.0
MAX_BODY = 64 << 20
_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_DROP_FROM_REQUEST = frozenset({b"content-length", b"expect", b"x-forwarded-for"})


class _Stale(Exception):
    """A reused keep-alive connection was closed by the backend before it answered."""


class _Unanswered(Exception):
    """A new connection was reset or closed before a byte of the answer: the backend
    died (a listener killed with connections in its backlog), most likely before the
    request reached the app."""


# Requests that may be sent again to another backend when one dies unanswered
# (RFC 9110, 9.2.2: idempotent methods), as nginx and Envoy retry them.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


# Per listen address: weighted fleets, their cumulative weights, the lower-cased steering
# header name and its value -> fleet map (empty when no fleet can be steered to).
_Choice = tuple[list[FleetRoute], list[int], bytes, dict[bytes, FleetRoute]]
_NO_CHOICE: _Choice = ([], [], b"", {})


def _choice(route: Route) -> _Choice:
    fleets = [f for f in route.fleets if f.weight > 0]
    cum, total = [], 0
    for f in fleets:
        total += f.weight
        cum.append(total)
    steer: dict[bytes, FleetRoute] = {}
    if route.header:
        # A fleet without backends cannot serve, so its name falls through to the weights.
        # Roles first, the first fleet of a role winning; an exact fleet id beats a role.
        for f in reversed(route.fleets):
            if f.backends and f.role:
                steer[f.role.encode()] = f
        for f in route.fleets:
            if f.backends:
                steer[f.fleet.encode()] = f
    if len(fleets) == 1:
        # Steering to the only weighted fleet changes nothing: leaving it out keeps the
        # common one-fleet route from looking at headers at all.
        steer = {value: f for value, f in steer.items() if f is not fleets[0]}
    return fleets, cum, route.header.lower().encode(), steer


class Proxy:
    """Serves the current table; ``metrics=False`` skips per-fleet counting (benchmarks)."""

    def __init__(self, *, metrics: bool = True) -> None:
        self.counters = Counters()
        self.metrics = metrics
        self.pool = Pool(CONNECT_TIMEOUT)
        self.closing = False
        self.in_flight = 0
        self.clients = Connections()
        self._choices: dict[str, _Choice] = {}
        self._backends: set[str] = set()
        self._rr: dict[str, int] = {}

    def set_table(self, table: RouteTable) -> None:
        """Serve ``table`` from the next request on; requests in flight finish as they are."""
        self._choices = {route.listen: _choice(route) for route in table.routes}
        self._backends = {b for r in table.routes for f in r.fleets for b in f.backends}
        self.pool.close_idle(self._backends)

    async def handle_client(
        self, listen: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.clients.add(writer)
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else "unknown"
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        requests = RequestReader(reader, writer, MAX_BODY)
        try:
            while not self.closing:
                try:
                    req = await requests.next_request(CLIENT_IDLE_TIMEOUT)
                except BadRequest as exc:
                    writer.write(simple_response(exc.status, "Bad Request", f"{exc}\n", close=True))
                    break
                if req is None:
                    break
                self.in_flight += 1
                try:
                    keep = await self._serve(listen, req, client_ip, writer)
                finally:
                    self.in_flight -= 1
                if not keep:
                    break
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            self.clients.discard()
            writer.close()

    async def _serve(
        self, listen: str, req: Request, client_ip: str, writer: asyncio.StreamWriter
    ) -> bool:
        fleets, cum, name, steer = self._choices.get(listen, _NO_CHOICE)
        fleet = steered = None
        if steer:
            # Steering: the header's value names a role or fleet id; weight does not matter.
            # A value nothing matches (say, a canary promoted meanwhile) falls through to the
            # weights, so a client that keeps sending the header is still served.
            for n, v in req.headers:
                if n.lower() == name:
                    fleet = steered = steer.get(v.strip())
                    break
        if fleet is None:
            if not fleets:
                return self._fail(writer, req, 503, f"no fleet has weight on {listen}")
            fleet = random.choices(fleets, cum_weights=cum)[0] if len(fleets) > 1 else fleets[0]
        if not self.metrics:  # no clock reads, no per-fleet counter: the bench's baseline
            return (await self._forward(req, fleet, None, client_ip, writer, listen))[1]
        start = time.monotonic()
        # Steered requests (testers') are counted apart: canary analysis judges real traffic.
        counter = self.counters.fleet(fleet.fleet if steered is None else fleet.fleet + STEERED)
        counter.in_flight += 1
        status = 502
        try:
            status, keep = await self._forward(req, fleet, counter, client_ip, writer, listen)
        finally:
            counter.in_flight -= 1
            counter.record(status, (time.monotonic() - start) * 1000.0)
        return keep

    def _fail(self, writer: asyncio.StreamWriter, req: Request, status: int, why: str) -> bool:
        keep = req.keep_alive and req.version == "1.1"
        writer.write(simple_response(status, _REASONS[status], why + "\n", close=not keep))
        return keep

    def _order(self, fleet: FleetRoute) -> list[str]:
        """Backends to try: least in flight first, round-robin among equals."""
        backends = fleet.backends
        if len(backends) == 1:
            return [backends[0]]
        start = self._rr.get(fleet.fleet, 0) % len(backends)
        self._rr[fleet.fleet] = start + 1
        rotated = backends[start:] + backends[:start]
        in_flight = self.counters.backend_in_flight
        return sorted(rotated, key=lambda a: in_flight.get(a, 0))

    async def _forward(
        self,
        req: Request,
        fleet: FleetRoute,
        counter: FleetCounter | None,
        client_ip: str,
        writer: asyncio.StreamWriter,
        listen: str,
    ) -> tuple[int, bool]:
        head = _request_head(req, client_ip, listen)
        for addr in self._order(fleet):
            self.counters.backend_started(addr)
            try:
                outcome = await self._try_backend(addr, req, head, writer)
            finally:
                self.counters.backend_finished(addr)
            if outcome is not None:
                return outcome
            if counter is not None:
                counter.connect_errors += 1
        why = f"no backend of fleet {fleet.fleet} accepted a connection"
        return 502, self._fail(writer, req, 502, why)

    async def _try_backend(
        self, addr: str, req: Request, head: bytes, writer: asyncio.StreamWriter
    ) -> tuple[int, bool] | None:
        """The (status, client keep-alive) answered, or None if another backend may take
        the request: none was connected, or (an idempotent request) the new connection
        was reset before a byte of the answer."""
        for attempt in range(2):
            try:
                conn = await self.pool.acquire(addr, fresh=attempt > 0)
            except ConnectFailed as exc:
                log.debug("connect failed: %s", exc)
                return None
            try:
                resp = await _send(conn, req, head)
            except _Stale:
                conn.close()
                continue  # replay once on a fresh connection, as HTTP clients do
            except _Unanswered as exc:
                conn.close()
                log.info("backend %s failed before answering: %s", addr, exc.__cause__)
                if req.method in _IDEMPOTENT:
                    return None  # another backend of the fleet gets it
                return 502, self._fail(writer, req, 502, f"backend {addr} failed: {exc.__cause__}")
            except TimeoutError:
                conn.close()
                return 504, self._fail(writer, req, 504, f"backend {addr} did not answer in time")
            except (OSError, httptools.HttpParserError, EOFError) as exc:
                conn.close()
                log.info("backend %s failed: %s", addr, exc)
                return 502, self._fail(writer, req, 502, f"backend {addr} failed: {exc}")
            return await self._relay(conn, req, resp, writer)
        return 502, self._fail(writer, req, 502, f"backend {addr} closed the connection")

    async def _relay(
        self, conn: BackendConn, req: Request, resp: ResponseParse, writer: asyncio.StreamWriter
    ) -> tuple[int, bool]:
        status = resp.status
        headers = end_to_end(resp.headers)
        no_body = req.method == b"HEAD" or status in (204, 304)
        te = header(resp.headers, b"transfer-encoding")
        chunked_in = te is not None and b"chunked" in te.lower()
        if chunked_in:
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        has_length = not chunked_in and header(headers, b"content-length") is not None
        until_close = not no_body and not has_length and not chunked_in
        keep, rechunk = req.keep_alive, False
        if not no_body and not has_length:
            if req.version == "1.1":
                rechunk = True
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                keep = False  # an HTTP/1.0 client learns the end of the body by the close
        if not keep:
            headers.append((b"connection", b"close"))
        elif req.version == "1.0":
            headers.append((b"connection", b"keep-alive"))
        out = bytearray(b"HTTP/1.1 %d %s\r\n" % (status, bytes(resp.reason) or b"-"))
        for name, value in headers:
            out += name + b": " + value + b"\r\n"
        out += b"\r\n"
        if no_body:
            resp.done = True
        try:
            _add_body(out, resp.take_body(), rechunk)
            writer.write(out)
            while not resp.done:
                await writer.drain()  # the client's pace bounds what is read from the backend
                try:
                    async with asyncio.timeout(RESPONSE_TIMEOUT):
                        data = await conn.reader.read(65536)
                    if data:
                        resp.feed(data)
                except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                    log.info("backend %s failed mid-response: %s", conn.addr, exc)
                    data = b""
                    until_close = False
                if not data:
                    conn.close()
                    if until_close:
                        break
                    return 502, False  # truncated: closing tells the client it is incomplete
                out = bytearray()
                _add_body(out, resp.take_body(), rechunk)
                writer.write(out)
            if rechunk:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            conn.close()
            return status, False
        reusable = resp.keep_alive and not until_close and req.method != b"HEAD"
        self.pool.release(conn, reusable=reusable, in_table=conn.addr in self._backends)
        return status, keep


def _add_body(out: bytearray, pieces: list[bytes], rechunk: bool) -> None:
    for piece in pieces:
        if rechunk:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        else:
            out += piece


def _request_head(req: Request, client_ip: str, listen: str) -> bytes:
    out = bytearray(req.method + b" " + req.url + b" HTTP/1.1\r\n")
    for name, value in end_to_end(req.headers, _DROP_FROM_REQUEST):
        out += name + b": " + value + b"\r\n"
    if header(req.headers, b"host") is None:
        out += b"host: " + listen.encode() + b"\r\n"  # HTTP/1.0 clients may omit it
    prior = [v for n, v in req.headers if n.lower() == b"x-forwarded-for"]
    out += b"x-forwarded-for: " + b", ".join([*prior, client_ip.encode()]) + b"\r\n"
    # The body is buffered, so it always goes out with a length, even if it came chunked.
    if req.body or req.method in (b"POST", b"PUT", b"PATCH"):
        out += b"content-length: %d\r\n" % len(req.body)
    out += b"\r\n"
    return bytes(out)


async def _send(conn: BackendConn, req: Request, head: bytes) -> ResponseParse:
    """Write the request and read up to the end of the response head."""
    resp = ResponseParse()
    try:
        conn.writer.write(head + req.body if req.body else head)
        await conn.writer.drain()
        async with asyncio.timeout(RESPONSE_TIMEOUT):
            while not resp.head_done:
                data = await conn.reader.read(65536)
                if not data:
                    raise EOFError("backend closed the connection before answering")
                resp.feed(data)
    except TimeoutError:
        raise  # a slow backend (an OSError too): 504, never sent again
    except (OSError, EOFError) as exc:
        if not resp.got_bytes:
            raise (_Stale if conn.reused else _Unanswered) from exc
        raise
    return resp

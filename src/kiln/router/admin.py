"""The admin API: HTTP/1.1 + JSON over the router's unix socket.

``GET /table``, ``PUT /table`` (compare-and-swap on ``version``: 409 on
conflict, 400 on an invalid table), ``GET /metrics`` (404 when the router was
started with ``--no-metrics``: no counts rather than zeros that look real),
``GET /health`` (pid, table version, whether metrics are on). It only
reads the state and calls ``RouterState.apply``; it must never change the table
or the listeners by itself, and never listens on TCP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from pydantic import ValidationError

from kiln.errors import RouterError, RouteTableConflict
from kiln.model.codec import from_json, to_json
from kiln.model.route import RouteTable
from kiln.router.state import RouterState
from kiln.router.wire import BadRequest, Connections, Request, RequestReader

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {409: "Conflict", 500: "Internal Server Error"}
METRICS_OFF = "per-fleet metrics are off: this router was started with --no-metrics"


class Admin:
    def __init__(self, state: RouterState) -> None:
        self._state = state
        self.connections = Connections()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        requests = RequestReader(reader, writer, 16 << 20)
        try:
            while True:
                try:
                    req = await requests.next_request(idle_timeout=300.0)
                except BadRequest as exc:
                    _write(writer, exc.status, {"error": str(exc)}, keep=False)
                    break
                if req is None:
                    break
                status, payload = await self._dispatch(req)
                _write(writer, status, payload, keep=req.keep_alive)
                await writer.drain()
                if not req.keep_alive:
                    break
        except ConnectionError:
            pass
        finally:
            self.connections.discard()
            writer.close()

    async def _dispatch(self, req: Request) -> tuple[int, Any]:
        path = req.url.split(b"?", 1)[0]
        state = self._state
        try:
            if path == b"/health" and req.method == b"GET":
                return 200, {
                    "pid": os.getpid(),
                    "version": state.table.version,
                    "metrics": state.proxy.metrics,
                }
            if path == b"/metrics" and req.method == b"GET":
                if not state.proxy.metrics:
                    return 404, {"error": METRICS_OFF}
                return 200, to_json(state.proxy.counters.snapshot(state.table))
            if path == b"/table" and req.method == b"GET":
                return 200, to_json(state.table)
            if path == b"/table" and req.method == b"PUT":
                try:
                    table: RouteTable = from_json(RouteTable, json.loads(req.body))
                except (ValueError, ValidationError) as exc:
                    return 400, {"error": f"not a route table: {exc}"}
                return 200, to_json(await state.apply(table))
        except RouteTableConflict as exc:
            return 409, {"error": str(exc)}
        except RouterError as exc:
            return 400, {"error": str(exc)}
        except Exception as exc:  # the admin API must answer, never die with the connection
            log.exception("admin request %s %s failed", req.method, req.url)
            return 500, {"error": f"internal error: {exc}"}
        if path in (b"/health", b"/metrics", b"/table"):
            return 405, {"error": f"method {req.method.decode()} not allowed"}
        return 404, {"error": f"no such endpoint {path.decode(errors='replace')}"}


def _write(writer: asyncio.StreamWriter, status: int, payload: Any, *, keep: bool) -> None:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    )
    if not keep:
        head += "connection: close\r\n"
    writer.write(head.encode() + b"\r\n" + body)

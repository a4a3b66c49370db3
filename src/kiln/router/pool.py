"""Keep-alive connections from the router to backends, pooled per backend address.

A connection is handed to one request at a time. The pool must never hand out
a connection the backend already closed, and must never keep idle connections
to a backend that left the table (that would hold a draining instance open).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from kiln.router.table_file import parse_address

MAX_IDLE_PER_BACKEND = 64


class ConnectFailed(Exception):
    """The backend refused or did not accept a connection: safe to try another backend."""


@dataclass(eq=False)
class BackendConn:
    addr: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class Pool:
    def __init__(self, connect_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._idle: dict[str, list[BackendConn]] = {}

    async def acquire(self, addr: str, *, fresh: bool = False) -> BackendConn:
        idle = self._idle.get(addr)
        while idle and not fresh:
            conn = idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        host, port = parse_address(addr)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=1 << 20), self._connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"{addr}: {exc or type(exc).__name__}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return BackendConn(addr, reader, writer)

    def release(self, conn: BackendConn, *, reusable: bool, in_table: bool) -> None:
        idle = self._idle.setdefault(conn.addr, [])
        if reusable and in_table and conn.usable() and len(idle) < MAX_IDLE_PER_BACKEND:
            idle.append(conn)
        else:
            conn.close()

    def close_idle(self, keep: set[str] | None = None) -> None:
        """Close idle connections to every backend not in ``keep`` (all when None)."""
        for addr in list(self._idle):
            if keep is None or addr not in keep:
                for conn in self._idle.pop(addr):
                    conn.close()

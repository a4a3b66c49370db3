"""The router's current table and the listeners that serve it; applies new tables.

An apply is all or nothing: it checks the version (compare-and-swap), validates,
binds every new listener and persists ``table.json`` before the swap, and undoes
what it opened if any step fails. Nothing else may change the table or listeners.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path

from kiln.errors import RouterError, RouteTableConflict
from kiln.model.route import RouteTable
from kiln.router.proxy import Proxy
from kiln.router.table_file import parse_address, save_table, validate

log = logging.getLogger(__name__)


class RouterState:
    def __init__(self, proxy: Proxy, table_path: Path) -> None:
        self.proxy = proxy
        self.table = RouteTable()
        self._table_path = table_path
        self._servers: dict[str, asyncio.Server] = {}
        self._lock = asyncio.Lock()

    async def start(self, table: RouteTable) -> None:
        """Serve a table loaded at start-up; a listener that cannot bind is logged, not fatal."""
        self.table = table
        self.proxy.set_table(table)
        for listen in {r.listen for r in table.routes}:
            try:
                self._servers[listen] = await self._bind(listen)
            except (OSError, RouterError) as exc:
                log.error("cannot listen on %s: %s", listen, exc)

    async def apply(self, new: RouteTable) -> RouteTable:
        async with self._lock:
            if new.version != self.table.version:
                raise RouteTableConflict(
                    f"route table changed: version {new.version} was applied against "
                    f"version {self.table.version}; read it again and retry"
                )
            validate(new)
            wanted = {r.listen for r in new.routes}
            opened: dict[str, asyncio.Server] = {}
            try:
                for listen in sorted(wanted - self._servers.keys()):
                    try:
                        opened[listen] = await self._bind(listen)
                    except OSError as exc:
                        raise RouterError(
                            f"cannot listen on {listen}: {exc.strerror or exc}; "
                            "the route table was not changed"
                        ) from exc
                result = dataclasses.replace(new, version=self.table.version + 1)
                # Persist before the swap: a router restarted right after this serves it.
                await asyncio.to_thread(save_table, self._table_path, result)
            except BaseException:
                for server in opened.values():
                    server.close()
                raise
            self.table = result
            self.proxy.set_table(result)
            self._servers.update(opened)
            for listen in list(self._servers.keys() - wanted):
                self._servers.pop(listen).close()
            log.info("applied route table version %d", result.version)
            return result

    def close_listeners(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()

    async def _bind(self, listen: str) -> asyncio.Server:
        host, port = parse_address(listen)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.proxy.handle_client(listen, reader, writer)

        family = socket.AF_INET6 if ":" in host else socket.AF_UNSPEC
        return await asyncio.start_server(
            handle, host, port, family=family, reuse_address=True, backlog=1024
        )

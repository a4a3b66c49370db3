"""Loading, checking and atomically persisting the router's table (``table.json``).

A table on disk is always complete: writes go to a temporary file that is
fsynced and renamed over the old one, so a crash never leaves half a table.
This module must never open listeners or touch the running router's state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kiln.errors import RouterError
from kiln.model.codec import from_json, to_json
from kiln.model.route import RouteTable


def load_table(path: Path) -> RouteTable | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RouterError(f"{path}: cannot read the route table: {exc}") from exc
    try:
        return from_json(RouteTable, data)
    except ValueError as exc:
        raise RouterError(f"{path}: not a route table: {exc}") from exc


def save_table(path: Path, table: RouteTable) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(to_json(table), indent=2, sort_keys=True).encode()
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        # The rename itself is durable only once the directory entry is synced.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RouterError(f"{path}: cannot persist the route table: {exc}") from exc


def parse_address(addr: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a (host, port) pair, or RouterError."""
    host, sep, port_text = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RouterError(f"{addr!r} is not a host:port address with a port 1-65535")
    return host, int(port_text)


def validate(table: RouteTable) -> None:
    """Raise RouterError naming the first problem that makes ``table`` unservable."""
    names: set[str] = set()
    listens: set[str] = set()
    for route in table.routes:
        if not route.name:
            raise RouterError("a route has an empty name")
        if route.name in names:
            raise RouterError(f"route {route.name!r} appears twice")
        names.add(route.name)
        parse_address(route.listen)
        if route.listen in listens:
            raise RouterError(f"route {route.name!r}: listen {route.listen} is used twice")
        listens.add(route.listen)
        fleets: set[str] = set()
        for fr in route.fleets:
            where = f"route {route.name!r}: fleet {fr.fleet!r}"
            if fr.fleet in fleets:
                raise RouterError(f"{where} appears twice")
            fleets.add(fr.fleet)
            if not 0 <= fr.weight <= 100:
                raise RouterError(f"{where}: weight {fr.weight} is not 0-100")
            if fr.weight > 0 and not fr.backends:
                raise RouterError(f"{where}: weight {fr.weight} but no backends")
            for backend in fr.backends:
                try:
                    parse_address(backend)
                except RouterError as exc:
                    raise RouterError(f"{where}: backend {exc}") from exc

"""Client of a router's admin socket, for kiln commands and the controller.

Translates httpx and OS errors into ``RouterError`` (409 into
``RouteTableConflict``) raised ``from`` the original; it must never let an
httpx exception reach its caller, and never starts a router (see ``process``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kiln.errors import RouterError, RouteTableConflict
from kiln.model.codec import from_json, to_json
from kiln.model.route import RouterMetrics, RouteTable
from kiln.router.paths import RouterPaths


class RouterClient:
    def __init__(self, state_dir: Path, *, timeout: float = 10.0) -> None:
        self.paths = RouterPaths.of(state_dir)
        self._http = httpx.Client(
            # Plain HTTP over a unix socket: verify=False skips loading the CA bundle,
            # which costs 0.1-0.5 s on every kiln command.
            transport=httpx.HTTPTransport(uds=str(self.paths.sock), verify=False),
            base_url="http://kiln-router",
            timeout=timeout,
        )

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def table(self) -> RouteTable:
        return from_json(RouteTable, self._call("GET", "/table"))

    def apply(self, table: RouteTable) -> RouteTable:
        """Replace the table if ``table.version`` is still current; returns the new one."""
        return from_json(RouteTable, self._call("PUT", "/table", to_json(table)))

    def metrics(self) -> RouterMetrics:
        return from_json(RouterMetrics, self._call("GET", "/metrics"))

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def ping(self) -> bool:
        try:
            return self._http.get("/health", timeout=2.0).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def wait_drained(self, backends: Iterable[str], timeout: float) -> bool:
        """True once none of ``backends`` has a request in flight; False after ``timeout`` s."""
        wanted = set(backends)
        deadline = time.monotonic() + timeout
        while True:
            in_flight = self.metrics().backend_in_flight
            if not any(in_flight.get(b, 0) for b in wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RouterError(f"router at {self.paths.sock} is unreachable: {exc}") from exc
        try:
            data = resp.json()
        except ValueError as exc:
            raise RouterError(f"router answered {path} with invalid JSON") from exc
        if resp.status_code == 409:
            raise RouteTableConflict(data.get("error", "route table conflict"))
        if resp.status_code != 200:
            raise RouterError(f"router refused {method} {path}: {data.get('error', resp.text)}")
        return data

"""One plain GET through a route, on a fresh connection: the router tests' probe."""

from __future__ import annotations

import http.client


def get(listen: str, path: str = "/") -> tuple[int, bytes]:
    host, port = listen.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()

"""kiln's builtin router: a long-running HTTP/1.1 reverse proxy per state directory.

The data plane (``proxy``) serves every route of a weighted route table; the
admin API (``admin``) on ``STATE/router/admin.sock`` reads and applies tables
and reports per-fleet metrics. kiln talks to it only through ``RouterClient``
and starts it with ``ensure_router``. This package must never import the
engine, the CLI, the store or providers.
"""

from __future__ import annotations

from kiln.router.client import RouterClient
from kiln.router.process import ensure_router, stop_router

__all__ = ["RouterClient", "ensure_router", "stop_router"]

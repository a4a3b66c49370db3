"""Ports for the routes tests and benchmarks create, safe from the kernel's own choices."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, below the kernel's ephemeral range.

    A port the kernel picked (bind to port 0) is in that range, and once released
    the kernel may hand it to anything that binds to port 0 (a local instance) or
    connects out before the router binds it: a test once failed with the route's
    port taken that way. Below the range only another explicit choice can take it.
    """
    low = int(_RANGE.read_text().split()[0]) if _RANGE.exists() else 32768
    for _ in range(200):
        port = random.randrange(max(1024, low // 2), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low} on 127.0.0.1")

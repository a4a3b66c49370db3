"""Serving the API with uvicorn on 127.0.0.1:PORT and a unix socket in the state dir."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import uvicorn

from kiln.api.app import create_app
from kiln.errors import KilnError

SOCKET = "controller.sock"


def run_api(spec: Path, state: Path, listen: str) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's own handlers)."""
    host, _, port = listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        raise KilnError(f"--listen must be 127.0.0.1:PORT (the API is local only), not {listen}")
    tcp = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        tcp.bind((host, int(port)))
    except OSError as e:
        raise KilnError(f"cannot listen on {listen}: {e.strerror}") from e
    tcp.listen(128)
    path = state / SOCKET
    path.unlink(missing_ok=True)
    uds = socket.socket(socket.AF_UNIX)
    uds.bind(str(path))
    os.chmod(path, 0o600)  # the socket is as private as the state directory
    uds.listen(128)
    config = uvicorn.Config(create_app(spec, state), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[tcp, uds])
    finally:
        path.unlink(missing_ok=True)

"""Serving the API with uvicorn on a unix socket in the state dir (and 127.0.0.1:PORT).

While it serves, ``STATE/controller.token`` holds a token of its own (named
``kiln-cli``, replaced at every start) so that a CLI with access to the state
directory (which holds the whole database anyway) can submit deploys to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from kiln.api.app import create_app
from kiln.api.files import LOCK, SOCKET, TOKEN
from kiln.engine.context import Context
from kiln.errors import KilnError, NotFound
from kiln.store import Store

CLI_TOKEN_NAME = "kiln-cli"


def run_api(ctx: Context, listen: str | None) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's own handlers). Jobs share the
    environment of ``ctx``, the controller loop's context."""
    state, store = ctx.state_dir, ctx.store
    sockets = [] if listen is None else [_tcp(listen)]
    path = state / SOCKET
    path.unlink(missing_ok=True)
    uds = socket.socket(socket.AF_UNIX)
    uds.bind(str(path))
    os.chmod(path, 0o600)  # the socket is as private as the state directory
    uds.listen(128)
    sockets.append(uds)
    token_file = _cli_token(store, state)
    config = uvicorn.Config(
        create_app(ctx.spec_path, state, ctx.environ), log_level="warning", access_log=False
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        path.unlink(missing_ok=True)
        token_file.unlink(missing_ok=True)
        with contextlib.suppress(NotFound):  # revoked by hand meanwhile
            store.revoke_token(CLI_TOKEN_NAME)


@contextlib.contextmanager
def claim(state: Path) -> Iterator[None]:
    """Hold the state directory's controller lock: one controller per state directory.
    The kernel drops it with the process, so a kill -9 leaves nothing to clean up."""
    fd = os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise KilnError(
                f"a controller (pid {holder}) serves {state} already; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _tcp(listen: str) -> socket.socket:
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
    return tcp


def _cli_token(store: Store, state: Path) -> Path:
    """A fresh token for the local CLI, readable by the state directory's owner only."""
    if CLI_TOKEN_NAME in store.token_names():
        store.revoke_token(CLI_TOKEN_NAME)  # a killed controller's; no one else holds it
    token = store.create_token(CLI_TOKEN_NAME)
    path = state / TOKEN
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    tmp.replace(path)
    return path

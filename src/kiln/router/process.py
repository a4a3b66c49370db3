"""Starting and stopping the router process of a state directory on demand.

``ensure_router`` starts at most one router per state directory, even when
several kiln commands call it at once (an fcntl lock serialises the start; the
router holds a lock on ``router.pid`` while it lives). This module must never
signal a process unless that lock proves it is the live router.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kiln.errors import RouterError
from kiln.router.client import RouterClient
from kiln.router.paths import RouterPaths

START_TIMEOUT = 10.0


def ensure_router(state_dir: Path, *, metrics: bool = True) -> RouterClient:
    """A client of the running router, starting it detached if it does not answer.

    ``metrics=False`` starts a router that counts no per-fleet metrics, for measuring
    what counting costs; kiln's engine never asks for it. A router already running
    with the other setting is an error, not silently returned.
    """
    paths = RouterPaths.of(state_dir)
    paths.dir.mkdir(parents=True, exist_ok=True)
    client = RouterClient(state_dir)
    if client.ping():
        return _same_metrics(client, state_dir, metrics)
    with _locked(paths.start_lock):
        proc = None if _running_pid(paths) else _spawn(state_dir, paths, metrics)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if client.ping():
                return client if proc is not None else _same_metrics(client, state_dir, metrics)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.02)
    client.close()
    raise RouterError(
        f"the router for {state_dir} did not start; last lines of {paths.log}:\n" + _tail(paths.log)
    )


def stop_router(state_dir: Path, timeout: float = 10) -> bool:
    """SIGTERM the router of ``state_dir`` and wait for it to exit; True if it was running."""
    paths = RouterPaths.of(state_dir)
    pid = _running_pid(paths)
    deadline = time.monotonic() + timeout
    while pid == -1 and time.monotonic() < deadline:
        time.sleep(0.02)  # a router that just started has not written its pid yet
        pid = _running_pid(paths)
    if pid is None:
        return False
    if pid <= 0:  # never os.kill(-1, ...): that signals every process we may signal
        raise RouterError(f"the router of {state_dir} holds its lock but wrote no pid")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    while _running_pid(paths) is not None:
        if time.monotonic() >= deadline:
            raise RouterError(f"router {pid} did not stop within {timeout} s")
        time.sleep(0.02)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
    return True


def _same_metrics(client: RouterClient, state_dir: Path, metrics: bool) -> RouterClient:
    try:
        running = client.health().get("metrics", True)
    except RouterError:
        client.close()
        raise
    if running != metrics:
        client.close()
        have, want = ("on", "off") if running else ("off", "on")
        raise RouterError(
            f"the router for {state_dir} runs with per-fleet metrics {have}; "
            f"stop it to start one with metrics {want}"
        )
    return client


def _running_pid(paths: RouterPaths) -> int | None:
    """The pid of the live router: only while it holds the lock on its pid file."""
    try:
        fd = os.open(paths.pid, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode().strip()
            # A router that just took the lock may not have written its pid yet.
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _spawn(state_dir: Path, paths: RouterPaths, metrics: bool) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "kiln.router", "run", "--state", str(state_dir)]
    with open(paths.log, "ab") as log:
        return subprocess.Popen(
            argv if metrics else [*argv, "--no-metrics"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the kiln command and its terminal
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

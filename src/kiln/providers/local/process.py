"""Starting and stopping instance processes.

Processes start in their own session (so they outlive kiln and are signalled as
a group) and stop with SIGTERM, then SIGKILL after the grace period. This
module must never signal a pid without first checking its start time: a pid
alone may by now belong to an unrelated process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kiln.errors import PermanentProviderError, TransientProviderError
from kiln.providers.local import procfs
from kiln.providers.local.fsutil import translate

_POLL = 0.02
_KILL_WAIT = 5.0  # after SIGKILL the kernel needs moments, not seconds


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    try:
        with open(log, "ab") as out:
            return subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: outlives kiln
                close_fds=True,
            )
    except OSError as exc:
        raise translate(exc, f"cannot start {argv[0]!r}") from exc


def reap(pid: int, children: dict[int, subprocess.Popen[bytes]]) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not stay a zombie."""
    child = children.get(pid)
    if child is not None:
        if child.poll() is not None:
            children.pop(pid, None)  # pop: another thread may reap it too
        return
    # Not our child: ChildProcessError, and its parent (or init) reaps it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(
    pid: int, start_time: int, timeout: float, children: dict[int, subprocess.Popen[bytes]]
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        reap(pid, children)
        if not procfs.is_running(pid, start_time):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _signal(pid: int, start_time: int, sig: signal.Signals) -> None:
    st = procfs.read_stat(pid)
    if st is None or st.start_time != start_time or not st.running:
        return  # gone, or the pid now belongs to someone else
    try:
        # Our instances lead their own process group, so workers they forked
        # get the signal too; a hand-started process may not, so only it does.
        if st.pgid == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise PermanentProviderError(f"not allowed to signal pid {pid}") from exc


def terminate(
    pid: int, start_time: int, grace: float, children: dict[int, subprocess.Popen[bytes]]
) -> None:
    """SIGTERM, wait up to ``grace``, then SIGKILL; only while (pid, start_time) match."""
    _signal(pid, start_time, signal.SIGTERM)
    if _wait_gone(pid, start_time, grace, children):
        return
    _signal(pid, start_time, signal.SIGKILL)
    if not _wait_gone(pid, start_time, _KILL_WAIT, children):
        raise TransientProviderError(f"pid {pid} survived SIGKILL", retry_after=1.0)

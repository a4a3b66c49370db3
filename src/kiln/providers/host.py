"""The machine kiln and its router run on, whatever provider runs the instances.

A route's backend is a port on 127.0.0.1. If a process kiln did not launch
listens on one (it took the port of a dead instance, say), the router would
send it traffic: this finds such processes and stops them, with the same
/proc reading and pid-reuse-safe signalling the local provider uses.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from kiln.model.drift import HostProcess
from kiln.providers.local import procfs
from kiln.providers.local.process import terminate


def listeners(ports: Collection[int]) -> list[HostProcess]:
    """The processes listening on these ports (as 127.0.0.1 reaches them), by port."""
    if not ports:
        return []  # the usual case: every backend is an instance kiln knows
    sockets = procfs.listening(ports)
    owners = procfs.socket_owners(sockets.values())
    found = []
    for port, inode in sorted(sockets.items()):
        pid = owners.get(inode)
        stat = procfs.read_stat(pid) if pid is not None else None
        if stat is None or pid == os.getpid():
            continue  # gone meanwhile, or not ours to see (another user's)
        found.append(HostProcess(port, stat.pid, stat.start_time, procfs.command_line(stat.pid)))
    return found


def stop(process: HostProcess, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace``; only while the pid is still that process."""
    terminate(process.pid, process.start_time, grace, {})

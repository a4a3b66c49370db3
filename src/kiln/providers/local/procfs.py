"""Reading Linux ``/proc``: a process's start time, session, state, environment and
listening sockets.

A pid alone never identifies an instance, because the kernel reuses pids; the
pair (pid, start time in clock ticks since boot, field 22 of ``/proc/PID/stat``)
does. This module only reads: it must never signal or otherwise touch a process.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # "R", "S", ... "Z" (zombie: exited, not yet reaped), "X" (dead)
    pgid: int
    sid: int
    start_time: int  # clock ticks after boot

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None if there is no such process (or no access)."""
    try:
        data = (PROC / str(pid) / "stat").read_bytes()
    except OSError:  # gone (ENOENT/ESRCH) or hidden from us (EACCES)
        return None
    # Field 2 (comm) is in parentheses and may itself hold spaces and ')', so
    # split only what follows the last ')'. rest[0] is field 3.
    rest = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=rest[0].decode(),
        pgid=int(rest[2]),
        sid=int(rest[3]),
        start_time=int(rest[19]),
    )


def is_running(pid: int, start_time: int) -> bool:
    """True if ``pid`` is still the process that started at ``start_time`` and has not exited."""
    st = read_stat(pid)
    return st is not None and st.start_time == start_time and st.running


def read_environ(pid: int) -> dict[str, str] | None:
    """The environment the process was exec'd with, or None if unreadable."""
    try:
        data = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read (e.g. a non-dumpable pid 1)
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return env


def environ_contains(pid: int, needle: bytes) -> bool:
    """Cheap pre-filter for a scan: does the raw environ contain ``needle``?"""
    try:
        return needle in (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False


def pids() -> Iterator[int]:
    for name in os.listdir(PROC):
        if name.isdigit():
            yield int(name)


def started_at(start_time: int) -> datetime:
    """Wall-clock time of a start time in ticks (boot time from ``/proc/stat``)."""
    btime = 0
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            btime = int(line.split()[1])
            break
    ticks = os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(btime + start_time / ticks, tz=UTC)


# /proc/net/tcp{,6} state of a listening socket, and the local addresses a request to
# 127.0.0.1 reaches: loopback itself, or any address (IPv4 and IPv6, as the kernel
# prints them: 32-bit words in host order).
_LISTEN = "0A"
_REACHED_FROM_LOOPBACK = {
    "0100007F",  # 127.0.0.1
    "00000000",  # 0.0.0.0
    "0" * 32,  # ::
    "0" * 24 + "01000000",  # ::1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


def listening(ports: Collection[int]) -> dict[int, int]:
    """Port -> inode of a TCP socket listening there that 127.0.0.1 reaches."""
    found: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:  # no IPv6, say
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            port = int(hex_port, 16)
            if fields[3] == _LISTEN and address in _REACHED_FROM_LOOPBACK and port in ports:
                found.setdefault(port, int(fields[9]))
    return found


def socket_owners(inodes: Collection[int]) -> dict[int, int]:
    """Socket inode -> the lowest pid holding it open (a forking server's parent)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, int] = {}
    for pid in sorted(pids()):
        fd_dir = PROC / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or not ours to look at
            continue
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(fd_dir / fd))
            except OSError:
                continue
            if inode is not None:
                owners.setdefault(inode, pid)
        if len(owners) == len(wanted):
            break
    return owners


def command_line(pid: int) -> str:
    """The process's argv joined by spaces ("" if it is gone)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)

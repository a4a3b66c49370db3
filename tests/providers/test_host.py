"""Processes on kiln's own machine listening on backend ports: found by /proc, stopped safely."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from kiln.providers import host

SERVE = "import socket,sys,time\ns=socket.socket({family})\ns.bind(({addr!r},0))\ns.listen()\n" \
    "print(s.getsockname()[1],flush=True)\ntime.sleep(60)"  # fmt: skip


def listener(family: str, addr: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(family=family, addr=addr)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def test_listeners_that_127_0_0_1_reaches_are_found(procs: list[subprocess.Popen[str]]) -> None:
    loopback, p1 = listener("socket.AF_INET", "127.0.0.1")
    any6, p2 = listener("socket.AF_INET6", "::")
    other, p3 = listener("socket.AF_INET", "127.0.0.2")  # 127.0.0.1 never reaches it
    procs += [loopback, any6, other]
    found = {p.port: p for p in host.listeners([p1, p2, p3, 1])}
    assert set(found) == {p1, p2}
    assert found[p1].pid == loopback.pid
    assert found[p2].pid == any6.pid
    assert "socket.AF_INET6" in found[p2].command
    assert host.listeners([]) == []


def test_stop_ends_only_the_process_it_found(procs: list[subprocess.Popen[str]]) -> None:
    proc, port = listener("socket.AF_INET", "127.0.0.1")
    procs.append(proc)
    (found,) = host.listeners([port])
    # The same pid with another start time is another process (pids are reused): untouched.
    host.stop(replace(found, start_time=found.start_time + 1), grace=1)
    time.sleep(0.2)
    assert proc.poll() is None
    host.stop(found, grace=5)
    assert proc.wait(timeout=5) is not None

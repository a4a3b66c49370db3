"""Drift: detection latency, the cost of a reconcile pass, the controller's memory.

All on the local provider (no daemon), measured in one run:

- detection: `kiln serve` with ``drift.interval`` 1s; an instance is killed
  by hand; time until the finding is in the store, and until a replacement
  is up (3 live instances, the finding resolved). Baseline: the interval.
- pass cost: ``kiln reconcile`` with nothing to do on 50 instances, wall and
  CPU time (the child's rusage). Baseline: ``kiln status`` on the same 50,
  the read-only command that observes the same instances.
- memory: RSS of `kiln serve` over 50 instances after ``KILN_BENCH_SOAK``
  seconds (default 60; the issue's figure is 600) against its RSS after the
  first pass: the ratio is its growth.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result
from kiln.router.process import stop_router
from kiln.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
KILN = str(Path(sys.executable).parent / "kiln")
MANY = 50


def _project(tmp: Path, replicas: int, interval: str) -> tuple[Path, dict[str, str]]:
    work = tmp / "hello"
    shutil.copytree(ROOT / "examples" / "hello", work, ignore=shutil.ignore_patterns(".kiln"))
    spec = work / "kiln.yaml"
    text = spec.read_text()
    for old, new in (
        ("replicas: 3", f"replicas: {replicas}"),
        (
            "interval: 1s, timeout: 1s, healthy_after: 2",
            "interval: 0.2s, timeout: 1s, healthy_after: 1",
        ),
        ('"127.0.0.1:8080"', f'"127.0.0.1:{free_port()}"'),
        ("    provider: local\n", f"    provider: local\n    drift: {{interval: {interval}}}\n"),
    ):
        if old not in text:
            raise RuntimeError(f"examples/hello/kiln.yaml no longer says {old!r}")
        text = text.replace(old, new)
    spec.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(API_TOKEN="bench", KILN_STATE=str(tmp / "state"), NO_COLOR="1")
    return work, env


def _kiln(work: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [KILN, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kiln {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def _timed(work: Path, env: dict[str, str], *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one kiln command, CPU from the child's rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    _kiln(work, env, *args)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _db(tmp: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp / "state" / "kiln.db", timeout=10) as db:
        return db.execute(sql).fetchall()


def _pids(tmp: Path) -> list[int]:
    records = (tmp / "state" / "instances" / "dev").glob("*.json")
    return [json.loads(p.read_text())["pid"] for p in records]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def detection() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-drift-") as t:
        tmp = Path(t)
        work, env = _project(tmp, 3, "1s")
        _kiln(work, env, "deploy")
        serve = subprocess.Popen(
            [KILN, "serve", "--listen", ""], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(2)  # a first pass: the loop is running
            os.kill(_pids(tmp)[0], signal.SIGKILL)
            tampered = time.perf_counter()
            found = replaced = 0.0
            deadline = tampered + 60
            while time.perf_counter() < deadline and not replaced:
                rows = _db(tmp, "SELECT resolution FROM drift_findings")
                now = time.perf_counter() - tampered
                if rows and not found:
                    found = now
                if rows and rows[0][0]:
                    replaced = now
                time.sleep(0.02)
            if not replaced:
                raise RuntimeError("the controller did not replace the killed instance in 60s")
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
            _kiln(work, env, "down")
            stop_router(tmp / "state")
    return [
        Result("drift", "kill -9 of an instance to its finding", found, "s", "drift.interval", 1),
        Result("drift", "kill -9 to replaced and healthy", replaced, "s", "drift.interval", 1),
    ]


def at_scale() -> list[Result]:
    soak = float(os.environ.get("KILN_BENCH_SOAK", "60"))
    with tempfile.TemporaryDirectory(prefix="kiln-bench-drift50-") as t:
        tmp = Path(t)
        work, env = _project(tmp, MANY, "5s")
        _kiln(work, env, "deploy")
        try:
            status = min(_timed(work, env, "status") for _ in range(3))
            reconcile = min(_timed(work, env, "reconcile") for _ in range(3))
            serve = subprocess.Popen(
                [KILN, "serve", "--listen", ""], cwd=work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                time.sleep(6)  # past the first pass
                first = _rss_mib(serve.pid)
                time.sleep(soak)
                later = _rss_mib(serve.pid)
            finally:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)
        finally:
            _kiln(work, env, "down")
            stop_router(tmp / "state")
    return [
        Result("drift", f"reconcile pass, {MANY} instances (wall)", reconcile[0], "s",
               f"kiln status, {MANY} instances", status[0]),
        Result("drift", f"reconcile pass, {MANY} instances (CPU)", reconcile[1], "s",
               f"kiln status, {MANY} instances", status[1]),
        Result("drift", f"controller RSS after {soak:g}s, {MANY} instances", later, "MiB",
               "its RSS after the first pass", first),
    ]  # fmt: skip


def run() -> list[Result]:
    return detection() + at_scale()

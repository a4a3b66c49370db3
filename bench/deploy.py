"""Blue-green of 10 local instances and rollback to a warm fleet, against floors.

- deploy: wall time of ``kiln deploy`` (bake, release, launch 10, health gate,
  switch) against the floor: start the same 10 processes directly and wait
  for each one's first healthy answer.
- rollback: wall time of ``kiln rollback`` to the warm fleet against the
  fixed cost of any kiln command (``kiln history``), measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import Result
from kiln.router.process import stop_router
from kiln.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
KILN = str(Path(sys.executable).parent / "kiln")
REPLICAS = 10


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def floor(app: Path) -> float:
    """Start REPLICAS server processes and wait for each one's first 200."""
    ports = [free_port() for _ in range(REPLICAS)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "server.py"],
            cwd=app,
            env={**os.environ, "PORT": str(p)},
            stdout=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        pending = set(ports)
        while pending:
            pending = {p for p in pending if not _healthy(p)}
            if pending:
                time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def _timed(work: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([KILN, *args], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        work = Path(tmp) / "hello"
        shutil.copytree(ROOT / "examples" / "hello", work, ignore=shutil.ignore_patterns(".kiln"))
        spec = (work / "kiln.yaml").read_text()
        spec = spec.replace("replicas: 3", f"replicas: {REPLICAS}")
        spec = spec.replace("interval: 1s", "interval: 0.02s").replace(
            "healthy_after: 2", "healthy_after: 1"
        )
        spec = spec.replace('"127.0.0.1:8080"', f'"127.0.0.1:{free_port()}"')
        (work / "kiln.yaml").write_text(spec)
        env = {**os.environ, "API_TOKEN": "bench", "KILN_STATE": str(Path(tmp) / "state")}
        try:
            _timed(work, env, "deploy")  # v1; also starts the router
            (work / "app" / "VERSION").write_text("v2\n")
            deploy_s = _timed(work, env, "deploy")
            floor_s = floor(work / "app")
            rollback_s = _timed(work, env, "rollback")
            noop_s = _timed(work, env, "history")
        finally:
            subprocess.run(
                [KILN, "down", "--volumes"], cwd=work, env=env, check=False, capture_output=True
            )
            stop_router(Path(tmp) / "state")
    return [
        Result(
            "deploy",
            f"blue-green of {REPLICAS} local instances (kiln deploy)",
            deploy_s,
            "s",
            f"start {REPLICAS} processes, first healthy answer",
            floor_s,
        ),
        Result(
            "deploy",
            "rollback to the warm fleet (kiln rollback)",
            rollback_s,
            "s",
            "a read-only kiln command (kiln history)",
            noop_s,
        ),
    ]

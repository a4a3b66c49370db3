"""Blue-green of 10 containers on a Docker engine, against the engine's own floors.

Issue 3's benchmark, all measured in one run on the same engine and images:

- kiln: wall time of ``kiln deploy`` replacing a warm 10-replica v1 fleet by
  v2 (launch 10, health gate, switch the route, keep v1 warm). The v2 image is
  baked first, so no build is timed.
- floor (a): ``docker run -d`` of 10 containers of the v2 image (by ID,
  published on 127.0.0.1, engine-chosen ports), all in parallel, until each
  one answers its first 200 on /healthz. Run while the v1 fleet is up, as
  during kiln's deploy.
- (b): ``docker service update --image v2 --detach=false`` of a 10-replica
  v1 service on a one-node Swarm with the default update config (parallelism
  1, delay 0, stop-first, monitor 5s). The service carries a health check
  with kiln's settings, so a task counts as running only once healthy.
- (c): the same, with the service created with ``--update-parallelism 10
  --update-order start-first --update-monitor 1s``.

Without a reachable engine, ``run()`` prints why to stderr and returns [].
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result
from kiln.router.process import stop_router
from kiln.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "integration" / "apps" / "hello-busybox"
KILN = str(Path(sys.executable).parent / "kiln")
DOCKER = shutil.which("docker") or "docker"
BUSYBOX = Path("/usr/bin/busybox")
REPLICAS = 10
TAG = "kiln-bench/hello"
SERVICE = "kiln-bench-web"
LABEL = "kiln-bench=docker"  # on every container and service this suite starts itself
TIMEOUT = 180.0  # any one command or wait
# The service's health check, as kiln's: a probe every 0.05s (1s timeout), healthy at
# the first 200, failures ignored for the first 30s (start_timeout). Afterwards 3
# failures in a row make a task unhealthy, so a slow probe on a busy host does not.
HEALTH = [
    "--health-cmd", "wget -q -O /dev/null http://127.0.0.1:8000/healthz",
    "--health-interval", "50ms",
    "--health-timeout", "1s",
    "--health-start-period", "30s",
    "--health-retries", "3",
]  # fmt: skip
FAST = ["--update-parallelism", "10", "--update-order", "start-first", "--update-monitor", "1s"]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except (OSError, http.client.HTTPException):
        # docker-proxy accepts before the app listens, then hangs up: not healthy yet.
        return False


def _docker(*args: str, check: bool = True, timeout: float = TIMEOUT) -> str:
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout.strip()


def _engine_problem() -> str | None:
    """Why the engine cannot be used, or None."""
    if shutil.which(DOCKER) is None:
        return "no docker CLI on PATH"
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} is missing (the test app's only binary)"
    try:
        proc = subprocess.run(
            [DOCKER, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker version failed: {exc}"
    if proc.returncode != 0:
        return f"Docker engine unreachable: {' '.join(proc.stderr.split())}"
    return None


def _timed(work: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [KILN, *args], cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"kiln {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return elapsed


def _bake(work: Path, env: dict[str, str]) -> str:
    """The image ID of the web service as it is now (built now if need be)."""
    proc = subprocess.run(
        [KILN, "bake", "web"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    [image] = [w for w in proc.stdout.split() if w.startswith("sha256:")]
    return image


def floor(image: str) -> float:
    """``docker run -d`` REPLICAS containers of ``image`` at once; until each answers 200."""
    ids: list[str] = []
    errors: list[str] = []
    deadline = time.monotonic() + TIMEOUT

    def one() -> None:
        try:
            cid = _docker(
                "run", "-d", "--label", LABEL, "-e", "PORT=8000", "-p", "127.0.0.1::8000", image
            )
            ids.append(cid)
            port = int(_docker("port", cid, "8000/tcp").splitlines()[0].rsplit(":", 1)[1])
            while not _healthy(port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"container {cid[:12]} never answered 200")
                time.sleep(0.01)
        except Exception as exc:  # reported by the caller
            errors.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(REPLICAS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"floor: {errors[0]}")
    return elapsed


def _swarm_update(v1: str, v2: str, options: list[str]) -> float:
    """Create a REPLICAS-task service of ``v1`` with ``options``; time its update to ``v2``."""
    _docker(
        "service", "create", "--detach=false", "--quiet", "--name", SERVICE,
        "--label", LABEL, "--container-label", LABEL, "--replicas", str(REPLICAS),
        "--env", "PORT=8000", *HEALTH, *options, v1,
    )  # fmt: skip
    try:
        start = time.perf_counter()
        _docker("service", "update", "--detach=false", "--quiet", "--image", v2, SERVICE)
        elapsed = time.perf_counter() - start
        state = _docker("service", "inspect", "--format", "{{.UpdateStatus.State}}", SERVICE)
        if state != "completed":
            raise RuntimeError(f"swarm update ended {state!r}, not completed")
        tasks = _docker(
            "service", "ps", "--filter", "desired-state=running",
            "--format", "{{.Image}} {{.CurrentState}}", SERVICE,
        ).splitlines()  # fmt: skip
        # Only the image is checked: on a loaded host a task may already be restarting
        # (a health check past its timeout), which is not the update's doing.
        if len(tasks) != REPLICAS or any(not t.startswith(f"{v2} ") for t in tasks):
            raise RuntimeError(
                f"swarm update did not leave {REPLICAS} v2 tasks:\n" + "\n".join(tasks)
            )
        status = json.loads(
            _docker("service", "inspect", "--format", "{{json .UpdateStatus}}", SERVICE)
        )
        started, completed = _go_time(status["StartedAt"]), _go_time(status["CompletedAt"])
        print(
            f"  swarm {' '.join(options) or 'defaults'}: update took {elapsed:.3f}s,"
            f" swarm's own UpdateStatus span {completed - started:.3f}s",
            file=sys.stderr,
        )
        return elapsed
    finally:
        _remove_service()


def _go_time(text: str) -> float:
    """Seconds since the epoch of an engine timestamp (nanoseconds cut to microseconds)."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head).replace(tzinfo=UTC)
    return stamp.timestamp() + float(f"0.{frac or 0}")


def _remove_service() -> None:
    _docker("service", "rm", SERVICE, check=False)
    # Its containers go away asynchronously: wait, bounded, so the next run starts clean.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not _docker("ps", "-aq", "--filter", f"label={LABEL}", check=False):
            return
        time.sleep(0.2)


def _remove_containers() -> None:
    ids = _docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
    if ids:
        _docker("rm", "-f", *ids, check=False)


def swarm(v1: str, v2: str) -> tuple[float, float]:
    """(b) and (c), on a one-node Swarm initialised here if none is active (and left after)."""
    state = _docker("info", "--format", "{{.Swarm.LocalNodeState}}")
    if state == "active":
        if _docker("info", "--format", "{{.Swarm.ControlAvailable}}") != "true":
            raise RuntimeError("this engine is a Swarm worker, not a manager")
    elif state == "inactive":
        _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    else:
        raise RuntimeError(f"Swarm is {state!r}")
    try:
        _docker("tag", v1, f"{TAG}:v1")
        _docker("tag", v2, f"{TAG}:v2")
        _remove_service()  # a leftover of an interrupted run
        defaults = _swarm_update(f"{TAG}:v1", f"{TAG}:v2", [])
        fast = _swarm_update(f"{TAG}:v1", f"{TAG}:v2", FAST)
        return defaults, fast
    finally:
        _remove_service()
        if state == "inactive":
            _docker("swarm", "leave", "--force", check=False)
        _docker("rmi", f"{TAG}:v1", f"{TAG}:v2", check=False)  # the tags only: kiln's stay


def _spec(text: str, route: int) -> str:
    for old, new in (
        ("replicas: 3", f"replicas: {REPLICAS}"),
        (
            "interval: 1s, timeout: 1s, healthy_after: 2",
            "interval: 0.05s, timeout: 1s, healthy_after: 1",
        ),
        ('"127.0.0.1:8080"', f'"127.0.0.1:{route}"'),
    ):
        if old not in text:
            raise RuntimeError(f"hello-busybox/kiln.yaml no longer says {old!r}")
        text = text.replace(old, new)
    return text


def run() -> list[Result]:
    problem = _engine_problem()
    if problem:
        print(f"docker suite skipped: {problem}", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-docker-") as tmp:
        work = Path(tmp) / "hello"
        shutil.copytree(APP, work)
        shutil.copy2(BUSYBOX, work / "app" / "busybox")
        spec = work / "kiln.yaml"
        spec.write_text(_spec(spec.read_text(), free_port()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env.update(API_TOKEN="bench", KILN_STATE=str(Path(tmp) / "state"), NO_COLOR="1")
        try:
            v1 = _bake(work, env)
            _timed(work, env, "deploy")  # v1: warms the engine, starts the router
            (work / "app" / "VERSION").write_text("v2\n")
            v2 = _bake(work, env)  # built now, so kiln deploy only finds it
            floor_s = floor(v2)  # with the v1 fleet up, as during the deploy below
            _remove_containers()
            kiln_s = _timed(work, env, "deploy")
        finally:
            _remove_containers()
            subprocess.run(
                [KILN, "down", "--volumes"],
                cwd=work,
                env=env,
                check=False,
                capture_output=True,
                timeout=TIMEOUT,
            )
            stop_router(Path(tmp) / "state")
    rows = [
        Result(
            "docker",
            f"blue-green of {REPLICAS} containers (kiln deploy)",
            kiln_s,
            "s",
            f"docker run {REPLICAS} in parallel, first 200 each",
            floor_s,
        )
    ]
    try:
        defaults_s, fast_s = swarm(v1, v2)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"docker suite: swarm baselines skipped: {exc}", file=sys.stderr)
        return rows
    return [
        *rows,
        Result(
            "docker",
            f"blue-green of {REPLICAS} containers (kiln deploy)",
            kiln_s,
            "s",
            "swarm service update, defaults",
            defaults_s,
        ),
        Result(
            "docker",
            f"blue-green of {REPLICAS} containers (kiln deploy)",
            kiln_s,
            "s",
            "swarm service update, parallelism 10 start-first",
            fast_s,
        ),
    ]

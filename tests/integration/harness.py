"""Integration harness: a real kiln CLI, real processes, the real router, real SQLite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.testing.ports import free_port

EXAMPLE = Path(__file__).parents[2] / "examples" / "hello"
# The same app for the docker provider, in busybox's shell (no Python in the image).
BUSYBOX_APP = Path(__file__).parent / "apps" / "hello-busybox"
PROVIDERS = ("local", "docker")
KILN = str(Path(sys.executable).parent / "kiln")
SECRET = "s3cr3t-value-that-must-never-leak"


@dataclass
class Project:
    """A copy of the hello app with fast health checks, its own state dir and route port."""

    root: Path
    state: Path
    port: int
    provider: str
    # A spec edit whose instances crash at start, and the text their log then shows.
    crash_edit: tuple[str, str, str]
    env: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kiln(
        self,
        *args: str,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KILN, *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kiln {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = self._popen(*args, extra_env=extra_env)
        self.started.append(proc)  # killed at teardown if a failing test left it running
        return proc

    def _popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [KILN, *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kiln("status", "--json").stdout)
        return data

    def set_version(self, version: str) -> None:
        (self.root / "app" / "VERSION").write_text(version + "\n")

    def edit_spec(self, old: str, new: str) -> None:
        spec = self.root / "kiln.yaml"
        text = spec.read_text()
        assert old in text, old
        spec.write_text(text.replace(old, new, 1))

    def instances(self, fleet: str) -> int:
        """Instances of ``fleet`` the provider sees (via status, which any engine supports)."""
        st = self.status()
        return sum(len(f["instances"]) for f in st["fleets"] if f["id"] == fleet) + sum(
            1 for i in st["strays"] if i["fleet"] == fleet
        )

    def get(self, path: str = "/", timeout: float = 5) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return str(r.read().decode())

    def serving(self, n: int = 10) -> set[str]:
        return {self.get().splitlines()[0] for _ in range(n)}


def make_project(tmp: Path, provider: str = "local") -> Project:
    root = tmp / "hello"
    if provider == "docker":
        shutil.copytree(BUSYBOX_APP, root)
        shutil.copy2("/usr/bin/busybox", root / "app" / "busybox")
        crash = ("port: 8000", 'port: 8000\n    command: ["/bin/nope.sh"]', "nope.sh")
    else:
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".kiln"))
        crash = ('command: ["python3", "server.py"]', 'command: ["python3", "nope.py"]', "nope.py")
    port = free_port()
    spec = (root / "kiln.yaml").read_text()
    spec = spec.replace(
        "interval: 1s, timeout: 1s, healthy_after: 2, start_timeout: 30s",
        "interval: 0.2s, timeout: 1s, healthy_after: 2, start_timeout: 15s",
    )
    spec = spec.replace('"127.0.0.1:8080"', f'"127.0.0.1:{port}"')
    (root / "kiln.yaml").write_text(spec)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(API_TOKEN=SECRET, KILN_STATE=str(tmp / "state"), NO_COLOR="1", COLUMNS="200")
    return Project(
        root=root, state=tmp / "state", port=port, provider=provider, crash_edit=crash, env=env
    )


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


BLUE_GREEN = "strategy: {type: blue-green, retain_previous: 10m}"


def use_canary(project: Project, steps: str, extra: str = "") -> None:
    """Switch the web service to a canary strategy with these steps (YAML flow list)."""
    project.edit_spec(
        BLUE_GREEN,
        f"strategy: {{type: canary, retain_previous: 10m, steps: {steps}{extra}}}",
    )


def events(project: Project, action: str) -> list[dict[str, object]]:
    found = json.loads(project.kiln("audit", "log", "--json", "-n", "1000").stdout)
    return [e for e in found if e["action"] == action]


def running_progress(project: Project) -> dict[str, object]:
    dep = project.status()["running_deployment"]
    return dict(dep["progress"] or {}) if dep else {}


def reach(project: Project, deploy: subprocess.Popen[str], what: str, **progress: object) -> None:
    """Wait until the running deployment's progress says ``progress``; on a timeout,
    fail with what the deploying kiln printed and where the deployment stood."""
    try:
        wait_for(
            lambda: all(running_progress(project).get(k) == v for k, v in progress.items()),
            what=what,
        )
    except AssertionError:
        deploy.kill()
        out, err = deploy.communicate(timeout=30)
        dep = project.status()["running_deployment"] or project.status()["last_deployment"]
        raise AssertionError(
            f"timed out waiting for {what}; deploy exited {deploy.returncode}:\n{out}\n{err}\n"
            f"deployment: {json.dumps(dep, indent=1)[-3000:]}"
        ) from None


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err

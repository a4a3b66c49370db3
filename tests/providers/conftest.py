"""Fixtures for provider tests: a build dir with a tiny HTTP server, a fleet, cleanup."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.model import Fleet, FleetState, HealthCheck, ServiceRelease, StrategyConfig
from kiln.providers.base import Provider, ProviderContext
from kiln.providers.registry import get_provider

APP = "shop"
ENV = "prod"

# Serves "ok" on $PORT; GET /env returns the environment as JSON.
SERVER = """\
import http.server, json, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(dict(os.environ)) if self.path == "/env" else "ok"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass

print("listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def wait_for(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.02)


def make_fleet(artifact: str, release: int = 1, service: str = "web") -> Fleet:
    return Fleet(
        id=Fleet.make_id(APP, ENV, service, release),
        app=APP,
        env=ENV,
        service=service,
        release=release,
        artifact=artifact,
        config_digest="sha256:" + "0" * 64,
        replicas=1,
        state=FleetState.LAUNCHING,
        created_at=datetime.now(UTC),
    )


def make_spec(
    artifact: str,
    command: tuple[str, ...] = (sys.executable, "server.py"),
    *,
    service: str = "web",
    env: Mapping[str, str] | None = None,
    volumes: Mapping[str, str] | None = None,
) -> ServiceRelease:
    return ServiceRelease(
        service=service,
        artifact=artifact,
        command=command,
        port=8000,
        replicas=1,
        env=dict(env or {}),
        secrets={},
        health=HealthCheck(),
        volumes=dict(volumes or {}),
        strategy=StrategyConfig(),
    )


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    d = tmp_path / "build"
    d.mkdir()
    (d / "server.py").write_text(SERVER)
    return d


@pytest.fixture
def make_provider(tmp_path: Path) -> Iterator[Callable[..., Provider]]:
    """Build providers on tmp state dirs; on teardown destroy everything they can see."""
    made: list[tuple[Provider, Path]] = []

    def make(name: str = "local", state_dir: Path | None = None, **options: object) -> Provider:
        state = state_dir or tmp_path / "state"
        provider = get_provider(name, ProviderContext(state, APP, options))
        made.append((provider, state))
        return provider

    yield make
    for provider, state in made:
        envs = {ENV} | {p.name for p in (state / "instances").glob("*")}
        for env in envs:
            for instance in provider.observe(env):
                provider.destroy(instance, grace=0.5)
    # Safety net for when the code under test is broken: kill whatever still
    # runs from these state dirs (their HOME is a scratch dir inside them).
    for _, state in made:
        _kill_strays(state.resolve())


def _kill_strays(state: Path) -> None:
    needle = f"HOME={state}/".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            pass

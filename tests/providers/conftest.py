"""Fixtures for provider tests: a build dir with a tiny HTTP server, a fleet, cleanup.

Docker: tests that need an engine get it through ``docker_client``, the one
place that decides what "no engine" means: a skip with the reason, or a
failure when ``KILN_REQUIRE_DOCKER=1`` (CI). Everything a docker test creates
is found again by label at teardown: containers and volumes by the state dir's
``kiln.state``, images by this session's ``kiln.test-session``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiln.model import Fleet, FleetState, HealthCheck, ServiceRelease, StrategyConfig
from kiln.providers.base import Provider, ProviderContext
from kiln.providers.registry import get_provider
from tests.engines import docker_or_skip, state_label

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
    **container: Any,
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
        **container,
    )


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    d = tmp_path / "build"
    d.mkdir()
    (d / "server.py").write_text(SERVER)
    return d


@pytest.fixture
def make_provider(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Provider]]:
    """Build providers on tmp state dirs; on teardown destroy everything they can see."""
    made: list[tuple[Provider, Path]] = []

    def make(name: str = "local", state_dir: Path | None = None, **options: object) -> Provider:
        state = state_dir or tmp_path / "state"
        if name == "docker":
            request.getfixturevalue("docker_client")  # skip (or fail) without an engine
            options.setdefault("environ", dict(os.environ))
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
    for name, state in {(p.name, s) for p, s in made}:
        if name == "docker":
            docker_sweep(request.getfixturevalue("docker_client"), state)
        else:
            _kill_strays(state.resolve())


def _kill_strays(state: Path) -> None:
    needle = f"HOME={state}/".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            pass


# -- docker -------------------------------------------------------------------

SESSION_LABEL = "kiln.test-session"

# The test app: busybox httpd serving /www ("ok" at /, the environment at
# /cgi-bin/env), announcing its port first, as the local test server does.
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
ENV PATH=/bin
WORKDIR /www
LABEL {label}={token}
CMD ["/bin/sh", "-c", "echo listening on $PORT; exec httpd -f -p $PORT -h /www"]
"""
CGI_ENV = '#!/bin/sh\necho "Content-Type: text/plain"\necho\nenv\n'


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = docker_or_skip()
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_session() -> str:
    """This session's token: every image the docker tests build carries it as a label."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
def docker_base_image(
    docker_client: Any, docker_session: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The tag of the test app image, built once per session from busybox-static."""
    busybox = shutil.which("busybox") or "/usr/bin/busybox"
    if not Path(busybox).is_file():
        pytest.fail("busybox-static is needed to build the docker test image")
    ctx = tmp_path_factory.mktemp("docker-base")
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "www" / "cgi-bin").mkdir(parents=True)
    (ctx / "www" / "index.html").write_text("ok")
    (ctx / "www" / "cgi-bin" / "env").write_text(CGI_ENV)
    (ctx / "www" / "cgi-bin" / "env").chmod(0o755)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(label=SESSION_LABEL, token=docker_session))
    tag = f"kiln-test/base:{docker_session}"
    docker_client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True)
    yield tag
    # Images built FROM the base inherit its label: remove children before parents.
    selector = {"label": f"{SESSION_LABEL}={docker_session}"}
    found = docker_client.images.list(all=True, filters=selector)
    for image in sorted(found, key=lambda i: i.attrs["Created"], reverse=True):
        # Best effort: a child listed after its parent may have gone with it.
        with contextlib.suppress(Exception):
            docker_client.images.remove(image.id, force=True)


def docker_app_dir(root: Path, base: str, *lines: str) -> Path:
    """A build context: the test app image, plus ``lines`` of Dockerfile."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("\n".join([f"FROM {base}", *lines, ""]))
    return root


def docker_sweep(client: Any, state: Path) -> None:
    """Remove every container and volume labelled with ``state``'s kiln.state."""
    selector = {"label": f"kiln.state={state_label(state)}"}
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for volume in client.volumes.list(filters=selector):
        with contextlib.suppress(Exception):
            volume.remove(force=True)

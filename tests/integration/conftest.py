"""Fixtures for the integration tests (the helpers live in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.router.process import stop_router
from tests.engines import docker_or_skip, require_docker, state_label
from tests.integration.harness import PROVIDERS, Project, make_project


@pytest.fixture(params=PROVIDERS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The hello app on each provider: every integration test runs on local and docker."""
    if request.param == "docker":
        require_docker()
    p = make_project(tmp_path, request.param)
    yield p
    _clean_up(p)


@pytest.fixture
def local_project(tmp_path: Path) -> Iterator[Project]:
    """The hello app on the local provider only: for engine logic no provider changes."""
    p = make_project(tmp_path, "local")
    yield p
    _clean_up(p)


@pytest.fixture
def docker_project(tmp_path: Path) -> Iterator[Project]:
    """The hello app on the docker provider only: for what only containers have."""
    require_docker()
    p = make_project(tmp_path, "docker")
    yield p
    _clean_up(p)


def _clean_up(p: Project) -> None:
    for proc in p.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    p.kiln("down", "--volumes", check=False, timeout=120)
    stop_router(p.state)
    if p.provider == "docker":  # a safety net in case `kiln down` itself failed
        client = docker_or_skip()
        label = f"kiln.state={state_label(p.state)}"
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)
        client.close()

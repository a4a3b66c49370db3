"""Which engines the tests may use: a missing one skips with the reason on a
developer machine, and fails where ``KILN_REQUIRE_DOCKER=1`` (CI) requires it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

REQUIRE_DOCKER = "KILN_REQUIRE_DOCKER"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def docker_or_skip() -> Any:
    """A docker SDK client for the engine tests use, or skip (fail when it is required)."""
    address = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.DockerClient(base_url=address, timeout=60)
        client.ping()
    except Exception as exc:
        reason = f"no Docker engine reachable at {address}: {' '.join(str(exc).split())}"
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{reason} ({REQUIRE_DOCKER}=1 requires one)")
        pytest.skip(reason)
    return client


def require_docker() -> None:
    docker_or_skip().close()


def state_label(state: Path) -> str:
    """The ``kiln.state`` value the docker provider gives a state dir."""
    return hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]

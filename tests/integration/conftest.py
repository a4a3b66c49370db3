"""Fixtures for the integration tests (the helpers live in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.router.process import stop_router
from tests.engines import require_docker
from tests.integration.harness import PROVIDERS, Project, make_project


@pytest.fixture(params=PROVIDERS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The hello app on each provider: every integration test runs on local and docker."""
    if request.param == "docker":
        require_docker()
    p = make_project(tmp_path, request.param)
    yield p
    p.kiln("down", "--volumes", check=False, timeout=60)
    stop_router(p.state)

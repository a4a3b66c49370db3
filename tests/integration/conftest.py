"""Fixtures for the integration tests (the helpers live in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.router.process import stop_router
from tests.integration.harness import Project, make_project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = make_project(tmp_path)
    yield p
    p.kiln("down", "--volumes", check=False, timeout=60)
    stop_router(p.state)

"""The provider contract: every provider passes this same suite.

Parametrised over provider names; a new provider (docker, ...) adds its name to
``PROVIDERS`` and must pass unchanged.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.errors import NotFound
from kiln.model import ArtifactSource
from kiln.providers import base
from kiln.providers.base import Provider
from kiln.providers.registry import get_provider, known_providers

from .conftest import ENV, make_fleet, make_spec, wait_for

PROVIDERS = ["local"]

KNOWN_CAPABILITIES = {base.READ_ONLY_ARTIFACT, base.FILE_CHANGES, base.VOLUMES, base.LOGS}
# Words that would betray an operation modifying a running instance.
MUTATING_WORDS = ("update", "modify", "patch", "restart", "reload", "edit", "exec", "scale")


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(request.param)


def _serves(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=1) as r:
            return bool(r.read() == b"ok")
    except OSError:
        return False


def test_registry_knows_every_contract_provider() -> None:
    assert set(PROVIDERS) <= set(known_providers())


def test_unknown_provider_is_not_found(tmp_path: Path) -> None:
    ctx = base.ProviderContext(tmp_path, "shop", {})
    with pytest.raises(NotFound, match=r"unknown provider 'x' \(known: local\)"):
        get_provider("x", ctx)


def test_registry_imports_providers_lazily() -> None:
    # A provider's module (and its SDK) is imported only when it is asked for.
    code = "import sys, kiln.providers.registry; print('kiln.providers.local' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_satisfies_protocol(provider: Provider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name in known_providers()
    assert isinstance(provider.capabilities, frozenset)
    assert provider.capabilities <= KNOWN_CAPABILITIES


def test_has_no_update_operation(provider: Provider) -> None:
    # Principle 1: a provider can launch and destroy; nothing changes an instance.
    methods = [n for n, _ in inspect.getmembers(type(provider), callable) if not n.startswith("_")]
    assert "launch" in methods
    offending = [m for m in methods if any(w in m.lower() for w in MUTATING_WORDS)]
    assert offending == []


def test_bake_is_deterministic(provider: Provider, build_dir: Path) -> None:
    digest = provider.bake("web", ArtifactSource(build=build_dir))
    assert digest.startswith("sha256:")
    assert provider.bake("web", ArtifactSource(build=build_dir)) == digest
    assert provider.has_artifact(digest)
    assert not provider.has_artifact("sha256:" + "f" * 64)


def test_launch_observe_destroy_round_trip(provider: Provider, build_dir: Path) -> None:
    digest = provider.bake("web", ArtifactSource(build=build_dir))
    fleet = make_fleet(digest)
    instances = provider.launch(fleet, make_spec(digest), {}, 2)

    assert len({i.id for i in instances}) == 2
    assert len({i.address for i in instances}) == 2
    for i in instances:
        assert (i.app, i.env, i.service, i.fleet, i.release) == ("shop", ENV, "web", fleet.id, 1)
        assert i.alive
        assert i.labels["fleet"] == fleet.id
        wait_for(lambda i=i: _serves(i.address))

    observed = {i.id: i for i in provider.observe(ENV)}
    assert set(observed) == {i.id for i in instances}
    assert all(i.alive for i in observed.values())
    assert provider.observe("staging") == []
    assert provider.changes(instances[0]) == []

    provider.destroy(instances[0], grace=2)
    assert [i.id for i in provider.observe(ENV)] == [instances[1].id]
    assert not _serves(instances[0].address)
    provider.destroy(instances[0], grace=2)  # idempotent

    provider.destroy(instances[1], grace=2)
    assert provider.observe(ENV) == []


def test_launch_zero_is_nothing(provider: Provider, build_dir: Path) -> None:
    digest = provider.bake("web", ArtifactSource(build=build_dir))
    assert provider.launch(make_fleet(digest), make_spec(digest), {}, 0) == []
    assert provider.observe(ENV) == []


def test_logs_of_instances(provider: Provider, build_dir: Path) -> None:
    digest = provider.bake("web", ArtifactSource(build=build_dir))
    [instance] = provider.launch(make_fleet(digest), make_spec(digest), {}, 1)
    wait_for(lambda: list(provider.logs(ENV, "web")))
    [line] = provider.logs(ENV, "web")
    assert instance.id in line
    assert line.endswith(f"listening on {instance.address.rpartition(':')[2]}")

"""The provider contract: every provider passes this same suite.

Parametrised over provider names; a new provider adds its name to ``PROVIDERS``
and a ``ContractApp`` for it (the same tiny test app, built the way that
provider builds: a directory of Python for local, a busybox image for docker),
and must pass unchanged.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from kiln.drift import runtime_drift
from kiln.errors import NotFound
from kiln.model import ArtifactSource, FileChange, Instance, Secret
from kiln.providers import base
from kiln.providers.base import Provider
from kiln.providers.local import LocalProvider
from kiln.providers.registry import get_provider, known_providers

from .conftest import ENV, SERVER, docker_app_dir, make_fleet, make_spec, wait_for

PROVIDERS = ["local", "docker"]

KNOWN_CAPABILITIES = {
    base.INTRUSIONS,
    base.RUNTIME,
    base.WRITABLE_AREAS,
    base.READ_ONLY_ARTIFACT,
    base.FILE_CHANGES,
    base.VOLUMES,
    base.LOGS,
    base.IMAGES,
}
# Words that would betray an operation modifying a running instance.
MUTATING_WORDS = ("update", "modify", "patch", "restart", "reload", "edit", "exec", "scale")


@dataclass(frozen=True)
class ContractApp:
    """The contract's test app for one provider.

    ``serve`` answers "ok" on $PORT after printing "listening on <port>";
    ``counter`` adds one to ``counter`` in $KILN_VOLUME_DATA, prints "run <n>",
    then serves; ``tamper`` tries to append to one of its own files and create
    a new one beside it, printing "tamper <file> refused|written|error ...",
    then "tamper done", then serves.
    """

    build_dir: Path
    serve: tuple[str, ...]
    counter: tuple[str, ...]
    tamper: tuple[str, ...]
    # Modifies a running instance's files from outside (as root on the host
    # would) and returns the changes that must now be reported.
    tamper_from_host: Callable[[Provider, Instance], list[FileChange]]


LOCAL_COUNTER = """\
import os, pathlib, runpy
f = pathlib.Path(os.environ["KILN_VOLUME_DATA"]) / "counter"
n = int(f.read_text()) + 1 if f.exists() else 1
f.write_text(str(n))
print("run", n, flush=True)
runpy.run_path("server.py")
"""

LOCAL_TAMPER = """\
import errno, runpy
for name, mode in [("server.py", "a"), ("new.txt", "w")]:
    try:
        open(name, mode).write("x")
        print("tamper", name, "written", flush=True)
    except OSError as e:
        print("tamper", name, "refused" if e.errno == errno.EROFS else f"error {e}", flush=True)
print("tamper done", flush=True)
runpy.run_path("server.py")
"""

SERVE_SH = "exec httpd -f -p $PORT -h /www"
DOCKER_COUNTER = (
    "/bin/sh",
    "-c",
    "f=$KILN_VOLUME_DATA/counter; n=$(( $(cat $f 2>/dev/null || echo 0) + 1 )); "
    f"echo $n > $f; echo run $n; {SERVE_SH}",
)
DOCKER_TAMPER = (
    "/bin/sh",
    "-c",
    "for f in index.html new.txt; do "
    'if out=$( (echo x >> $f) 2>&1 ); then echo tamper $f written; else case "$out" in '
    '*Read-only*) echo tamper $f refused;; *) echo tamper $f error "$out";; esac; fi; done; '
    f"echo tamper done; {SERVE_SH}",
)


def _local_tamper(provider: Provider, instance: Instance) -> list[FileChange]:
    assert isinstance(provider, LocalProvider)
    art = provider.root / "artifacts" / instance.labels["artifact"].removeprefix("sha256:")
    # Through the host path, bypassing the instance's read-only mount.
    (art / "server.py").chmod(0o644)
    (art / "server.py").write_text("print('pwned')")
    art.chmod(0o755)
    (art / "backdoor.sh").write_text("")
    return [FileChange("backdoor.sh", "added"), FileChange("server.py", "changed")]


Tamper = Callable[[Provider, Instance], list[FileChange]]


def _docker_tamper(client: Any, base_image: str) -> Tamper:
    def tamper(provider: Provider, instance: Instance) -> list[FileChange]:
        # The container's root filesystem (the merged overlay), edited from a
        # helper container that mounts it: what root on the engine's host can
        # do behind kiln's back, the read-only flag notwithstanding.
        merged = client.api.inspect_container(instance.ref)["GraphDriver"]["Data"]["MergedDir"]
        script = "echo pwned > /root/www/index.html && echo x > /root/backdoor"
        client.containers.run(
            base_image, ["/bin/sh", "-c", script], volumes={merged: {"bind": "/root"}}, remove=True
        )
        return [FileChange("/backdoor", "added"), FileChange("/www/index.html", "changed")]

    return tamper


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, make_provider: Callable[..., Provider]) -> Provider:
    return make_provider(request.param)


@pytest.fixture
def app(provider: Provider, request: pytest.FixtureRequest, tmp_path: Path) -> ContractApp:
    if provider.name == "docker":
        base_image: str = request.getfixturevalue("docker_base_image")
        client = request.getfixturevalue("docker_client")
        return ContractApp(
            build_dir=docker_app_dir(tmp_path / "build", base_image),
            serve=(),  # the image's CMD
            counter=DOCKER_COUNTER,
            tamper=DOCKER_TAMPER,
            tamper_from_host=_docker_tamper(client, base_image),
        )
    build = tmp_path / "build"
    build.mkdir()
    (build / "server.py").write_text(SERVER)
    (build / "counter.py").write_text(textwrap.dedent(LOCAL_COUNTER))
    (build / "tamper.py").write_text(textwrap.dedent(LOCAL_TAMPER))
    return ContractApp(
        build_dir=build,
        serve=(sys.executable, "server.py"),
        counter=(sys.executable, "counter.py"),
        tamper=(sys.executable, "tamper.py"),
        tamper_from_host=_local_tamper,
    )


def _log_text(provider: Provider) -> str:
    return "\n".join(provider.logs(ENV, "web", tail=1000))


def _launch_one(
    provider: Provider, app: ContractApp, command: tuple[str, ...], **kwargs: Any
) -> Instance:
    digest = provider.bake("web", ArtifactSource(build=app.build_dir))
    [instance] = provider.launch(make_fleet(digest), make_spec(digest, command, **kwargs), {}, 1)
    return instance


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
    with pytest.raises(NotFound, match=r"unknown provider 'x' \(known: docker, local\)"):
        get_provider("x", ctx)


def test_registry_imports_providers_lazily() -> None:
    # A provider's module (and its SDK) is imported only when it is asked for.
    code = (
        "import sys, kiln.providers.registry; "
        "print([m for m in ('kiln.providers.local', 'kiln.providers.docker', 'docker') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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


def test_bake_is_deterministic(provider: Provider, app: ContractApp) -> None:
    build_dir = app.build_dir
    digest = provider.bake("web", ArtifactSource(build=build_dir))
    assert digest.startswith("sha256:")
    assert provider.bake("web", ArtifactSource(build=build_dir)) == digest
    assert provider.has_artifact(digest)
    assert not provider.has_artifact("sha256:" + "f" * 64)


def test_launch_observe_destroy_round_trip(provider: Provider, app: ContractApp) -> None:
    digest = provider.bake("web", ArtifactSource(build=app.build_dir))
    fleet = make_fleet(digest)
    instances = provider.launch(fleet, make_spec(digest, app.serve), {}, 2)

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


def test_runtime_is_what_the_release_gave(provider: Provider, app: ContractApp) -> None:
    if base.RUNTIME not in provider.capabilities:
        pytest.skip(f"{provider.name} reports no runtime")
    digest = provider.bake("web", ArtifactSource(build=app.build_dir))
    spec = make_spec(digest, app.serve, env={"GREETING": "hi"}, volumes={"data": "/data"})
    secret = Secret("TOKEN", "t0k3n")
    [instance] = provider.launch(make_fleet(digest), spec, {"TOKEN": secret}, 1)
    runtime = provider.runtime(instance)
    assert runtime is not None
    assert (runtime.env["GREETING"], runtime.env["TOKEN"]) == ("hi", "t0k3n")
    # What the provider adds itself (port, labels, volume variables) is left out.
    assert not [k for k in runtime.env if k == "PORT" or k.startswith("KILN_")]
    assert "t0k3n" not in repr(runtime)
    # Compared as the engine does (there with the secret's digest): nothing differs.
    assert runtime_drift(replace(spec, secrets={"TOKEN": "t0k3n"}), runtime) == {}
    provider.destroy(instance, grace=2)
    assert provider.runtime(instance) is None


def test_launch_zero_is_nothing(provider: Provider, app: ContractApp) -> None:
    digest = provider.bake("web", ArtifactSource(build=app.build_dir))
    assert provider.launch(make_fleet(digest), make_spec(digest, app.serve), {}, 0) == []
    assert provider.observe(ENV) == []


def test_logs_of_instances(provider: Provider, app: ContractApp) -> None:
    instance = _launch_one(provider, app, app.serve)
    wait_for(lambda: list(provider.logs(ENV, "web")))
    [line] = provider.logs(ENV, "web")
    # The port the app listens on is the instance's own, not always the address's
    # (a container's port may be published on another).
    assert re.fullmatch(rf"{re.escape(instance.id)} \| listening on \d+", line)


def test_volume_persists_across_replacement(provider: Provider, app: ContractApp) -> None:
    if base.VOLUMES not in provider.capabilities:
        pytest.skip(f"{provider.name} declares no volumes")
    volumes = {"data": "/data"}
    first = _launch_one(provider, app, app.counter, volumes=volumes)
    wait_for(lambda: "run 1" in _log_text(provider))
    wait_for(lambda: _serves(first.address))
    provider.destroy(first, grace=2)
    second = _launch_one(provider, app, app.counter, volumes=volumes)
    wait_for(lambda: "run 2" in _log_text(provider), timeout=10)
    wait_for(lambda: _serves(second.address))
    assert provider.changes(second) == []  # the volume is not the instance's filesystem
    provider.destroy(second, grace=2)

    provider.remove_volumes(ENV)
    third = _launch_one(provider, app, app.counter, volumes=volumes)
    wait_for(lambda: _serves(third.address))
    logs = provider.logs(ENV, "web", tail=1000)
    assert f"{third.id} | run 1" in list(logs)


def test_write_to_the_artifact_fails(provider: Provider, app: ContractApp) -> None:
    if base.READ_ONLY_ARTIFACT not in provider.capabilities:
        pytest.skip(f"{provider.name} cannot make the artifact read-only here")
    instance = _launch_one(provider, app, app.tamper)
    wait_for(lambda: "tamper done" in _log_text(provider), timeout=10)
    tampering = [line for line in _log_text(provider).splitlines() if "| tamper" in line]
    assert len(tampering) == 3, tampering
    assert all(line.endswith(" refused") for line in tampering[:2]), tampering
    assert provider.changes(instance) == []


def test_changes_reports_modified_files(provider: Provider, app: ContractApp) -> None:
    if base.FILE_CHANGES not in provider.capabilities:
        pytest.skip(f"{provider.name} does not report file changes")
    instance = _launch_one(provider, app, app.serve)
    wait_for(lambda: _serves(instance.address))
    assert provider.changes(instance) == []
    expected = app.tamper_from_host(provider, instance)
    found = provider.changes(instance)
    assert [c for c in found if c in expected] == expected, found

"""The docker provider on a real engine: sealed settings, images, errors, networking.

Needs a Docker engine: without one these tests skip with the reason, or fail
when ``KILN_REQUIRE_DOCKER=1`` (see ``tests.engines.docker_or_skip``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import PermanentProviderError
from kiln.model import ArtifactSource, Instance, Secret
from kiln.providers.base import Provider
from kiln.providers.docker import DockerProvider
from tests.engines import DEFAULT_DOCKER_HOST

from .conftest import (
    APP,
    ENV,
    docker_app_dir,
    make_fleet,
    make_spec,
    state_label,
    wait_for,
)

MakeProvider = Callable[..., Provider]
SECRET_VALUE = "s3cr3t-value-do-not-leak"


@pytest.fixture
def docker(make_provider: MakeProvider) -> DockerProvider:
    p = make_provider("docker")
    assert isinstance(p, DockerProvider)
    return p


@pytest.fixture
def app_dir(tmp_path: Path, docker_base_image: str) -> Path:
    return docker_app_dir(tmp_path / "build", docker_base_image)


def _get(address: str, path: str = "/") -> str | None:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=1) as r:
            return str(r.read().decode())
    except OSError:
        return None


def _launch(p: DockerProvider, build: Path, **spec: Any) -> Instance:
    secrets = spec.pop("secrets", {})
    digest = p.bake("web", ArtifactSource(build=build))
    command = spec.pop("command", ())
    [instance] = p.launch(make_fleet(digest), make_spec(digest, command, **spec), secrets, 1)
    return instance


# -- sealed containers ----------------------------------------------------------


def test_container_is_sealed(docker: DockerProvider, app_dir: Path, docker_client: Any) -> None:
    instance = _launch(docker, app_dir, cap_add=("NET_BIND_SERVICE",), cpus=0.5, memory="256m")
    attrs = docker_client.api.inspect_container(instance.ref)
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == ["NET_BIND_SERVICE"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert set(host["Tmpfs"]) == {"/tmp"}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    # Created from the image ID, never a tag.
    assert attrs["Config"]["Image"] == instance.labels["artifact"]
    assert attrs["Config"]["Image"].startswith("sha256:")
    labels = attrs["Config"]["Labels"]
    for key in ("app", "env", "service", "release", "fleet", "instance", "config", "state"):
        assert f"kiln.{key}" in labels
    assert labels["kiln.instance"] == instance.id == attrs["Name"].lstrip("/")
    assert labels["kiln.config"].startswith("sha256:")


def test_ports_published_on_loopback_only(
    docker: DockerProvider, app_dir: Path, docker_client: Any
) -> None:
    instance = _launch(docker, app_dir)
    attrs = docker_client.api.inspect_container(instance.ref)
    bindings = attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert bindings
    assert all(b["HostIp"] == "127.0.0.1" for b in bindings)
    assert instance.address == f"127.0.0.1:{bindings[0]['HostPort']}"
    wait_for(lambda: _get(instance.address) == "ok")
    assert "PORT=8000" in attrs["Config"]["Env"]


def test_host_network_serves_on_a_kiln_chosen_port(
    docker: DockerProvider, app_dir: Path, docker_client: Any
) -> None:
    instance = _launch(docker, app_dir, network="host")
    attrs = docker_client.api.inspect_container(instance.ref)
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    host, _, port = instance.address.rpartition(":")
    assert host == "127.0.0.1"
    assert port != "8000"
    assert f"PORT={port}" in attrs["Config"]["Env"]
    wait_for(lambda: _get(instance.address) == "ok")
    [observed] = docker.observe(ENV)
    assert observed.address == instance.address


def test_env_secrets_and_volume_vars_reach_the_app_but_no_label(
    docker: DockerProvider, app_dir: Path, docker_client: Any
) -> None:
    instance = _launch(
        docker,
        app_dir,
        env={"GREETING": "hi"},
        secrets={"API_KEY": Secret("API_KEY", SECRET_VALUE)},
        volumes={"data": "/data"},
    )
    wait_for(lambda: _get(instance.address) == "ok")
    env = _get(instance.address, "/cgi-bin/env") or ""
    assert "GREETING=hi" in env
    assert f"API_KEY={SECRET_VALUE}" in env
    assert "KILN_VOLUME_DATA=/data" in env
    attrs = docker_client.api.inspect_container(instance.ref)
    assert SECRET_VALUE not in json.dumps(attrs["Config"]["Labels"])
    assert all(SECRET_VALUE not in v for v in instance.labels.values())
    assert SECRET_VALUE not in "\n".join(docker.logs(ENV, "web"))
    assert docker.changes(instance) == []  # the volume's mount point is not drift


# -- observe / destroy --------------------------------------------------------


def test_hand_started_container_is_observed(
    docker: DockerProvider, docker_client: Any, docker_base_image: str
) -> None:
    labels = {
        "kiln.state": docker.state_id,
        "kiln.app": APP,
        "kiln.env": ENV,
        "kiln.service": "web",
    }
    container = docker_client.containers.run(
        docker_base_image, ["sleep", "60"], labels=labels, detach=True, init=True
    )
    [found] = docker.observe(ENV)
    assert found.ref == container.id
    assert found.alive
    assert found.service == "web"
    assert found.fleet == ""
    assert found.id == container.name
    docker.destroy(found, grace=1)
    assert docker.observe(ENV) == []
    docker.destroy(found, grace=1)  # idempotent


def test_runtime_of_a_hand_started_container(
    docker: DockerProvider, docker_client: Any, docker_base_image: str, tmp_path: Path
) -> None:
    labels = {"kiln.state": docker.state_id, "kiln.app": APP, "kiln.env": ENV}
    docker_client.containers.run(
        docker_base_image,
        ["sleep", "60"],
        labels=labels,
        environment={"GREETING": "hi", "PORT": "1"},
        volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
        detach=True,
        init=True,
    )
    [found] = docker.observe(ENV)
    runtime = docker.runtime(found)
    assert runtime is not None
    assert runtime.env["GREETING"] == "hi"
    assert "PORT" not in runtime.env  # kiln's own variable, whoever set it
    assert runtime.command == ("sleep", "60")
    # Not read-only, and a host directory mounted: what a sealed instance never has.
    assert runtime.mounts == {"/mnt": f"bind:{tmp_path}:ro", "/": "rootfs:writable"}
    docker.destroy(found, grace=1)
    assert docker.runtime(found) is None


def test_dead_container_stays_visible(docker: DockerProvider, app_dir: Path) -> None:
    instance = _launch(docker, app_dir, command=("/bin/sh", "-c", "exit 0"))
    wait_for(lambda: [i.alive for i in docker.observe(ENV)] == [False])
    [dead] = docker.observe(ENV)
    assert dead.id == instance.id
    assert dead.ref == instance.ref


def test_state_dirs_do_not_see_each_other(
    docker: DockerProvider, make_provider: MakeProvider, app_dir: Path, tmp_path: Path
) -> None:
    instance = _launch(docker, app_dir)
    other = make_provider("docker", state_dir=tmp_path / "other")
    assert other.observe(ENV) == []
    with pytest.raises(PermanentProviderError, match="not one of this state dir"):
        other.destroy(instance, grace=1)
    assert [i.id for i in docker.observe(ENV)] == [instance.id]
    assert state_label(tmp_path / "state") == instance.labels["state"]


def test_remove_volumes_removes_only_that_env(
    docker: DockerProvider, app_dir: Path, docker_client: Any
) -> None:
    instance = _launch(docker, app_dir, volumes={"data": "/data"})
    name = f"kiln-{docker.state_id}-{APP}-{ENV}-data"
    assert docker_client.api.inspect_volume(name)["Labels"]["kiln.env"] == ENV
    docker.destroy(instance, grace=1)
    docker.remove_volumes("staging")
    docker_client.api.inspect_volume(name)
    docker.remove_volumes(ENV)
    assert docker_client.volumes.list(filters={"name": name}) == []


# -- images -------------------------------------------------------------------


def test_skip_rebake_reuses_the_image(
    docker: DockerProvider, tmp_path: Path, docker_base_image: str, monkeypatch: Any
) -> None:
    builds: list[object] = []
    real_build = docker._client.api.build

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        builds.append(kwargs)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(docker._client.api, "build", counting_build)
    first = docker_app_dir(tmp_path / "a", docker_base_image, "COPY notes.txt /notes.txt")
    (first / "notes.txt").write_text("v1")
    (first / "scratch.log").write_text("ignored")
    (first / ".dockerignore").write_text("*.log\n")
    digest = docker.bake("web", ArtifactSource(build=first))
    assert len(builds) == 1
    # Same inputs elsewhere (and an ignored file changed): no second build.
    second = tmp_path / "b"
    subprocess.run(["cp", "-a", str(first), str(second)], check=True)
    (second / "scratch.log").write_text("changed, but ignored")
    assert docker.bake("web", ArtifactSource(build=second)) == digest
    assert len(builds) == 1
    # A changed input is a new build and a new image.
    (second / "notes.txt").write_text("v2")
    assert docker.bake("web", ArtifactSource(build=second)) != digest
    assert len(builds) == 2
    # The human tag points at the image; the digest is what a release keeps.
    tags = docker._client.api.inspect_image(digest)["RepoTags"]
    assert f"kiln/shop-web:{digest.removeprefix('sha256:')[:12]}" in tags


def test_a_tag_resolves_to_the_image_id(
    docker: DockerProvider, docker_client: Any, docker_base_image: str
) -> None:
    image_id = docker_client.api.inspect_image(docker_base_image)["Id"]
    assert docker.bake("web", ArtifactSource(image=docker_base_image)) == image_id
    assert docker.has_artifact(image_id)
    assert not docker.has_artifact(docker_base_image)  # a tag is not an artifact


def test_missing_image_is_one_clear_error(docker: DockerProvider) -> None:
    ref = "kiln-test/does-not-exist:1"
    with pytest.raises(PermanentProviderError, match=f"^image {ref} not found") as info:
        docker.bake("web", ArtifactSource(image=ref))
    assert "\n" not in str(info.value)


def test_failing_build_is_one_clear_error(
    docker: DockerProvider, tmp_path: Path, docker_base_image: str
) -> None:
    build = docker_app_dir(tmp_path / "b", docker_base_image, 'RUN ["/bin/sh", "-c", "exit 7"]')
    with pytest.raises(PermanentProviderError, match=r"service web: build failed:.*7") as info:
        docker.bake("web", ArtifactSource(build=build))
    assert "\n" not in str(info.value)


def test_missing_dockerfile_or_context_is_one_clear_error(
    docker: DockerProvider, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PermanentProviderError, match="no Dockerfile at"):
        docker.bake("web", ArtifactSource(build=tmp_path / "empty"))
    with pytest.raises(PermanentProviderError, match=r"no Dockerfile at .*Other\.Dockerfile"):
        docker.bake("web", ArtifactSource(build=tmp_path / "empty", dockerfile="Other.Dockerfile"))
    with pytest.raises(PermanentProviderError, match=r"build context .* does not exist"):
        docker.bake("web", ArtifactSource(build=tmp_path / "nowhere"))


def test_bad_limits_and_network_are_kiln_errors(docker: DockerProvider, app_dir: Path) -> None:
    with pytest.raises(PermanentProviderError, match="memory"):
        _launch(docker, app_dir, memory="256x")
    with pytest.raises(PermanentProviderError, match="network must be published or host"):
        _launch(docker, app_dir, network="bridge")
    assert docker.observe(ENV) == []


def test_launch_refuses_an_unknown_artifact(docker: DockerProvider) -> None:
    digest = "sha256:" + "e" * 64
    with pytest.raises(PermanentProviderError, match="is not an image"):
        docker.launch(make_fleet(digest), make_spec(digest, ()), {}, 1)
    assert docker.observe(ENV) == []


# -- engine address -------------------------------------------------------------


@pytest.mark.parametrize("where", ["host", "environ"])
def test_unreachable_engine_is_one_line_naming_the_address(tmp_path: Path, where: str) -> None:
    from kiln.providers.base import ProviderContext
    from kiln.providers.registry import get_provider

    address = "unix:///nonexistent.sock"
    options: dict[str, object] = (
        {"host": address} if where == "host" else {"environ": {"DOCKER_HOST": address}}
    )
    with pytest.raises(PermanentProviderError) as info:
        get_provider("docker", ProviderContext(tmp_path, APP, options))
    message = str(info.value)
    assert message.startswith(f"cannot reach the Docker engine at {address}: ")
    assert "\n" not in message


def test_address_comes_from_options_not_os_environ(
    make_provider: MakeProvider, monkeypatch: Any
) -> None:
    engine = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST  # where the tests' engine is
    nowhere = "unix:///nonexistent.sock"
    monkeypatch.setenv("DOCKER_HOST", nowhere)
    # The spec's host wins over the command's DOCKER_HOST; kiln's own os.environ is never read.
    p = make_provider("docker", host=engine, environ={"DOCKER_HOST": nowhere})
    assert isinstance(p, DockerProvider)
    assert p.address == engine
    if engine == DEFAULT_DOCKER_HOST:
        assert isinstance(make_provider("docker", environ={}), DockerProvider)


def test_importing_the_provider_does_not_import_the_sdk() -> None:
    code = "import sys, kiln.providers.docker; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_logs_follow_yields_new_lines(docker: DockerProvider, app_dir: Path) -> None:
    cmd = ("/bin/sh", "-c", "echo one; sleep 1; echo two; exec sleep 60")
    instance = _launch(docker, app_dir, command=cmd)
    lines = docker.logs(ENV, "web", follow=True, tail=10)
    assert next(lines) == f"{instance.id} | one"
    assert next(lines) == f"{instance.id} | two"

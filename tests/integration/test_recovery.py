"""A kiln killed mid-deploy (kill -9 at every step) converges on resume; the router keeps
serving across its own restart."""

from __future__ import annotations

import json
import signal

import pytest

from kiln.router.process import ensure_router, stop_router
from kiln.testing.load import Load
from tests.integration.harness import Project, wait_for

pytestmark = pytest.mark.integration

# Where a deploy dies, and which release must serve once `kiln resume` has run.
KILL_POINTS = [
    ("before:launch", "v2 hello"),
    ("after:launch", "v2 hello"),
    ("before:wait_healthy", "v2 hello"),
    ("after:wait_healthy", "v2 hello"),
    ("before:set_routes", "v2 hello"),
    ("after:set_routes", "v2 hello"),
    ("before:retain", "v2 hello"),
]
# Resuming is the engine's; what a provider adds is finding what a dead kiln launched
# but never recorded, and what it routed: docker runs those points, local all of them.
DOCKER_KILL_POINTS = {"before:launch", "after:launch", "after:set_routes"}
KILL_CASES = [
    pytest.param(provider, failpoint, serving, id=f"{provider}-{failpoint}")
    for failpoint, serving in KILL_POINTS
    for provider in ("local", "docker")
    if provider == "local" or failpoint in DOCKER_KILL_POINTS
]


def assert_converged(project: Project, serving: str) -> None:
    st = project.status()
    assert st["running_deployment"] is None
    assert st["strays"] == []
    live = [f for f in st["fleets"] if f["state"] in ("active", "retained")]
    for fleet in live:
        assert fleet["alive"] == fleet["replicas"], fleet
        assert all(i["alive"] for i in fleet["instances"])
    assert [f for f in st["fleets"] if f["state"] == "launching"] == []
    assert len([f for f in live if f["state"] == "active"]) == 1
    assert project.serving() == {serving}


@pytest.mark.parametrize(("project", "failpoint", "serving"), KILL_CASES, indirect=["project"])
def test_kill_9_mid_deploy_then_resume(project: Project, failpoint: str, serving: str) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    with Load(project.url, clients=20, max_seconds=90) as load:
        killed = project.kiln("deploy", check=False, extra_env={"KILN_FAILPOINT": failpoint})
        assert killed.returncode == -signal.SIGKILL
        # history reads without side effects (status would already resume it)
        last = json.loads(project.kiln("history", "--json").stdout)[0]
        assert last["deployment"]["status"] == "running"
        out = project.kiln("resume")
        assert "succeeded" in out.stdout
        result = load.stop()
    assert result.failed == 0, result.errors
    assert_converged(project, serving)


@pytest.mark.parametrize("failpoint", ["before:destroy", "after:destroy"])
def test_kill_9_on_the_failure_path_then_resume(project: Project, failpoint: str) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hello, FAIL_HEALTH: '1'}")
    project.edit_spec("start_timeout: 15s", "start_timeout: 1s")
    with Load(project.url, clients=20, max_seconds=90) as load:
        killed = project.kiln("deploy", check=False, extra_env={"KILN_FAILPOINT": failpoint})
        assert killed.returncode == -signal.SIGKILL
        resumed = project.kiln("resume", check=False)
        assert resumed.returncode == 1
        assert "wait_healthy failed" in resumed.stderr
        result = load.stop()
    assert result.failed == 0, result.errors
    assert_converged(project, "v1 hello")
    assert [f["id"] for f in project.status()["fleets"]] == ["hello.dev.web.r1"]


def test_external_kill_9_during_health_wait_then_deploy_resumes(project: Project) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hello, STARTUP_DELAY: '5'}")
    with Load(project.url, clients=20, max_seconds=90) as load:
        proc = project.popen("deploy")
        wait_for(lambda: project.instances("hello.dev.web.r2") == 3, what="v2 instances")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # The next deploy finds the interrupted one, finishes it, then has nothing to do.
        out = project.kiln("deploy")
        assert "nothing to do" in out.stdout
        result = load.stop()
    assert result.failed == 0, result.errors
    assert_converged(project, "v2 hello")


def test_router_restart_keeps_the_route_table(project: Project) -> None:
    project.kiln("deploy")
    before = ensure_router(project.state).table()
    assert stop_router(project.state)
    after = ensure_router(project.state).table()
    assert [r.name for r in after.routes] == ["hello/dev/web"]
    assert after.routes == before.routes
    assert project.serving() == {"v1 hello"}


def test_instances_and_router_outlive_the_kiln_command(project: Project) -> None:
    project.kiln("deploy")
    # Nothing of kiln runs now but the router and the instances it left behind.
    assert project.serving() == {"v1 hello"}


# SIGINT and SIGTERM take the same path in the CLI: both on local, one on docker.
@pytest.mark.parametrize(
    ("project", "sig"),
    [("local", signal.SIGINT), ("local", signal.SIGTERM), ("docker", signal.SIGTERM)],
    indirect=["project"],
)
def test_interrupted_deploy_rolls_back_at_once(project: Project, sig: signal.Signals) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hello, STARTUP_DELAY: '10'}")
    with Load(project.url, clients=20, max_seconds=90) as load:
        proc = project.popen("deploy")
        wait_for(lambda: project.instances("hello.dev.web.r2") == 3, what="v2 instances")
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 130
        result = load.stop()
    assert result.failed == 0, result.errors
    last = json.loads(project.kiln("history", "--json").stdout)[0]["deployment"]
    assert last["status"] == "failed"
    assert "interrupted" in last["reason"]
    assert_converged(project, "v1 hello")
    assert [f["id"] for f in project.status()["fleets"]] == ["hello.dev.web.r1"]

"""Blue-green on the local provider, driven through the kiln CLI under real traffic."""

from __future__ import annotations

import pytest

from kiln.testing.load import Load
from tests.integration.harness import Project, wait_for

pytestmark = pytest.mark.integration


def active_fleets(status: dict) -> list[dict]:  # type: ignore[type-arg]
    return [f for f in status["fleets"] if f["state"] == "active"]


def test_deploy_v1_then_v2_under_load_fails_no_request(project: Project) -> None:
    out = project.kiln("deploy")
    assert "release 1 serves hello/dev" in out.stdout
    assert project.serving() == {"v1 hello"}

    project.set_version("v2")
    with Load(project.url, clients=24, max_seconds=90) as load:
        project.kiln("deploy", "-m", "ship v2")
        # The same keep-alive clients move to v2: their latest answers all come from it
        # (stragglers that were in flight at v1 during the switch may finish after it).
        wait_for(
            lambda: set(load.snapshot().recent[-50:]) == {"v2 hello"},
            what="the load's latest 50 answers to all be v2",
        )
        result = load.stop()
    assert result.failed == 0, result.errors
    assert result.ok > 100
    assert project.serving() == {"v2 hello"}

    st = project.status()
    assert st["current_release"]["number"] == 2
    (active,) = active_fleets(st)
    assert active["id"] == "hello.dev.web.r2"
    assert active["alive"] == 3
    retained = [f for f in st["fleets"] if f["state"] == "retained"]
    assert [f["id"] for f in retained] == ["hello.dev.web.r1"]
    assert retained[0]["alive"] == 3  # warm for instant rollback


def test_unchanged_deploy_is_a_no_op(project: Project) -> None:
    project.kiln("deploy")
    out = project.kiln("deploy")
    assert "nothing to do" in out.stdout
    history = project.kiln("history", "--json").stdout
    assert history.count('"number"') == 1


def test_failing_health_leaves_v1_serving(project: Project) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hello, FAIL_HEALTH: '1'}")
    project.edit_spec("start_timeout: 15s", "start_timeout: 2s")
    with Load(project.url, clients=20, max_seconds=60) as load:
        proc = project.kiln("deploy", check=False)
        result = load.stop()
    assert proc.returncode == 1
    assert "wait_healthy failed" in proc.stderr
    assert "release 1 still serves" in proc.stderr
    assert result.failed == 0, result.errors
    assert project.serving() == {"v1 hello"}
    st = project.status()
    assert st["current_release"]["number"] == 1
    assert [f["id"] for f in st["fleets"]] == ["hello.dev.web.r1"]
    assert all(i["fleet"] == "hello.dev.web.r1" for f in st["fleets"] for i in f["instances"])
    assert st["strays"] == []
    assert st["last_deployment"]["status"] == "failed"


def test_instance_that_crashes_fails_fast_with_its_log(project: Project) -> None:
    project.kiln("deploy")
    old, new, symptom = project.crash_edit
    project.edit_spec(old, new)
    proc = project.kiln("deploy", check=False)
    assert proc.returncode == 1
    # Local: the process exits before its health gate; docker: the engine cannot start it.
    assert "exited before it was healthy" in proc.stderr or "launch failed" in proc.stderr
    assert symptom in proc.stderr  # the instance's own error, from its log or the engine
    assert project.serving() == {"v1 hello"}


def test_rollback_is_instant_from_the_warm_fleet(project: Project) -> None:
    project.kiln("deploy")
    v1 = active_fleets(project.status())[0]
    project.set_version("v2")
    project.kiln("deploy")
    assert project.serving() == {"v2 hello"}

    with Load(project.url, clients=20, max_seconds=60) as load:
        out = project.kiln("rollback")
        result = load.stop()
    assert "release 3 serves" in out.stdout
    assert result.failed == 0, result.errors
    assert project.serving() == {"v1 hello"}
    st = project.status()
    (active,) = active_fleets(st)
    # The very same fleet and processes that served v1: nothing was launched.
    assert active["id"] == v1["id"]
    assert {i["ref"] for i in active["instances"]} == {i["ref"] for i in v1["instances"]}
    release = st["current_release"]
    assert release["number"] == 3
    assert release["reason"] == "rollback to release 1"
    assert release["services"]["web"]["artifact"] == v1["artifact"]
    assert [f["id"] for f in st["fleets"] if f["state"] == "retained"] == ["hello.dev.web.r2"]

    project.kiln("rollback", "--to", "2")
    assert project.serving() == {"v2 hello"}


def test_rollback_to_an_unknown_release_changes_nothing(project: Project) -> None:
    project.kiln("deploy")
    proc = project.kiln("rollback", "--to", "9", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: release 9")
    assert proc.stderr.strip().count("\n") == 0
    proc = project.kiln("rollback", check=False)
    assert proc.returncode == 1
    assert "no release before 1" in proc.stderr
    assert project.status()["current_release"]["number"] == 1


def test_volume_data_survives_replacement_and_artifact_is_read_only(project: Project) -> None:
    import urllib.request

    project.kiln("deploy")
    req = urllib.request.Request(project.url + "/data", data=b"kept", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 201
    project.set_version("v2")
    project.kiln("deploy")
    assert "kept" in project.get("/data")
    assert project.get("/artifact-write").startswith("refused: Read-only file system")


# Local only (CI time): the lock is the engine's.
@pytest.mark.parametrize("project", ["local"], indirect=True)
def test_concurrent_deploy_is_refused_naming_the_holder(project: Project) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hello, STARTUP_DELAY: '8'}")
    first = project.popen("deploy")
    try:
        wait_for(lambda: project.status()["running_deployment"] is not None, what="the 1st")
        second = project.kiln("deploy", check=False)
        assert second.returncode == 1
        assert "locked by another deployment" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        assert first.wait(timeout=60) == 0, first.stderr.read() if first.stderr else ""
    assert project.serving() == {"v2 hello"}

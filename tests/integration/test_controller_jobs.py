"""The CLI submits deploys, rollbacks and promotions to a running controller and follows them."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from kiln.testing.load import Load
from tests.integration.harness import (
    KILN,
    SECRET,
    Project,
    events,
    finish,
    reach,
    use_canary,
    wait_for,
)


def start_controller(project: Project, **extra_env: str) -> subprocess.Popen[str]:
    """`kiln serve` on the socket only, without the app's secret in its environment:
    every secret it uses must come from the CLI that submits."""
    env = {k: v for k, v in project.env.items() if k != "API_TOKEN"}
    token = project.state / "controller.token"
    stale = token.read_text() if token.exists() else None  # a killed controller's
    proc = subprocess.Popen(
        [KILN, "serve", "--listen", ""],
        cwd=project.root,
        env={**env, **extra_env},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    project.started.append(proc)
    wait_for(lambda: token.exists() and token.read_text() != stale, 30, "the controller")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def alive(project: Project) -> list[dict[str, Any]]:
    st = project.status()
    return [i for f in st["fleets"] if f["state"] == "active" for i in f["instances"] if i["alive"]]


def test_deploy_and_rollback_run_in_the_controller(local_project: Project) -> None:
    project = local_project
    project.edit_spec("    provider: local\n", "    provider: local\n    drift: {interval: 0.5s}\n")
    controller = start_controller(project)
    first = project.kiln("deploy", "-m", "first", extra_env={"KILN_ACTOR": "alice"})
    assert "deploy runs in the controller" in first.stderr
    assert "job 1" in first.stderr
    assert "✔ launch" in first.stderr  # the controller's step reports, replayed here
    assert "release 1" in first.stdout
    assert project.serving() == {"v1 hello"}
    (started,) = events(project, "deploy.started")
    assert str(started["actor"]).startswith("alice@")
    assert str(started["actor"]).endswith("(api:kiln-cli)")
    assert started["reason"] == "first"

    # The secret the CLI brought stays with the controller: it replaces a dead instance.
    victim = alive(project)[0]
    os.kill(int(victim["ref"].split(":")[0]), signal.SIGKILL)
    wait_for(
        lambda: victim["id"] not in {i["id"] for i in alive(project)} and len(alive(project)) == 3,
        timeout=30,
        what="the controller to replace the killed instance with the CLI's secret",
    )

    project.set_version("v2")
    assert "job 2" in project.kiln("deploy").stderr
    assert project.serving() == {"v2 hello"}
    back = project.kiln("rollback")
    assert "rollback runs in the controller" in back.stderr
    assert project.serving() == {"v1 hello"}
    assert SECRET not in (project.state / "kiln.db").read_bytes().decode("latin-1")
    stop(controller)
    assert not (project.state / "controller.token").exists()
    assert "kiln-cli" not in project.kiln("token", "list").stdout


def test_a_failed_deploy_in_the_controller_fails_the_cli(local_project: Project) -> None:
    project = local_project
    controller = start_controller(project)
    project.kiln("deploy")
    old, new, _ = project.crash_edit
    project.edit_spec(old, new)
    out = project.kiln("deploy", check=False)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "✘" in out.stderr
    assert project.serving() == {"v1 hello"}
    # Bad input the controller refuses before a job: a clear line, exit 1.
    missing = project.kiln("rollback", "--to", "99", check=False)
    assert missing.returncode == 1
    assert "99" in missing.stderr.strip().splitlines()[-1]
    stop(controller)


def test_one_job_per_environment_and_ctrl_c_only_stops_following(local_project: Project) -> None:
    project = local_project
    use_canary(project, "[{weight: 20, pause: manual}]")
    controller = start_controller(project)
    project.kiln("deploy")
    project.set_version("v2")
    follower = project.popen("deploy")
    reach(project, follower, "the manual pause", step=1)

    second = project.kiln("deploy", check=False)
    assert second.returncode == 1
    assert "a deploy of dev is running here already" in second.stderr

    follower.send_signal(signal.SIGINT)
    code, _, err = finish(follower)
    assert code == 130
    assert "the deploy goes on in the controller" in err
    assert project.status()["running_deployment"] is not None  # not aborted
    project.kiln("advance")
    wait_for(lambda: project.status()["running_deployment"] is None, what="the job to finish")
    assert project.serving() == {"v2 hello"}
    stop(controller)


def test_without_a_live_controller_the_cli_deploys_itself(local_project: Project) -> None:
    project = local_project
    controller = start_controller(project)
    again = project.kiln("serve", "--listen", "", check=False, timeout=30)
    assert again.returncode == 1
    assert f"a controller (pid {controller.pid}) serves" in again.stderr
    controller.kill()  # kill -9: its socket and token stay behind
    controller.wait()
    assert (project.state / "controller.sock").exists()
    out = project.kiln("deploy")
    assert "controller" not in out.stderr
    assert project.serving() == {"v1 hello"}
    (started,) = events(project, "deploy.started")
    assert "api:" not in str(started["actor"])
    # A new controller takes over the state directory and replaces the stale token.
    stale = (project.state / "controller.token").read_text()
    restarted = start_controller(project)
    wait_for(lambda: (project.state / "controller.token").read_text() != stale, 30, "a new token")
    project.set_version("v2")
    assert "job 1" in project.kiln("deploy").stderr
    assert project.kiln("token", "list").stdout.split() == ["kiln-cli"]  # one, the new one
    stop(restarted)


def test_kill_9_of_the_controller_mid_deploy_loses_no_request(local_project: Project) -> None:
    project = local_project
    project.edit_spec("    provider: local\n", "    provider: local\n    drift: {interval: 0.5s}\n")
    project.kiln("deploy")
    project.set_version("v2")
    # The controller kills itself (-9) just before the switch of the deploy it runs.
    controller = start_controller(project, KILN_FAILPOINT="before:set_routes")
    with Load(project.url, clients=8, max_seconds=120) as load:
        out = project.kiln("deploy", check=False)
        assert controller.wait(timeout=30) == -signal.SIGKILL
        again = start_controller(project)
        wait_for(
            lambda: project.status()["running_deployment"] is None,
            what="the restarted controller to finish or roll back the deployment",
        )
        result = load.stop()
    assert result.failed == 0, result.errors
    assert result.ok > 0
    assert out.returncode == 1
    assert "lost the controller" in out.stderr
    last = project.status()["last_deployment"]
    assert last["status"] in ("succeeded", "failed"), last  # failed: the old one serves
    assert project.serving(20) == {"v2 hello" if last["status"] == "succeeded" else "v1 hello"}
    live = alive(project)
    assert len(live) == 3  # no duplicates, none missing
    assert len({i["fleet"] for i in live}) == 1
    assert project.status()["strays"] == []
    stop(again)

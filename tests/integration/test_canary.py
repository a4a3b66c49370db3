"""Canary deployments end to end: real instances, real traffic through the real router.

Analysis reads the router's own per-fleet counters, so every test here sends
real requests with the load generator while the canary steps run.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter

import pytest

from kiln.router.client import RouterClient
from kiln.testing.load import Load
from tests.integration.harness import (
    Project,
    events,
    finish,
    reach,
    running_progress,
    use_canary,
    wait_for,
)


def router(project: Project) -> RouterClient:
    return RouterClient(project.state)


def fleet_requests(project: Project) -> Counter[tuple[str, str]]:
    """(fleet, "requests" or "5xx") -> count, as the router counted them so far."""
    counts: Counter[tuple[str, str]] = Counter()
    for name, m in router(project).metrics().fleets.items():
        counts[name, "requests"] = m.requests
        counts[name, "5xx"] = m.responses_5xx
    return counts


def get_with(project: Project, header: str, value: str) -> str:
    request = urllib.request.Request(project.url + "/", headers={header: value})
    with urllib.request.urlopen(request, timeout=5) as r:
        return str(r.read().decode()).splitlines()[0]


# Local only (CI time): analysis reads the router's counters, whatever runs the instances.
@pytest.mark.parametrize("project", ["local"], indirect=True)
def test_erroring_canary_is_rolled_back_by_analysis(project: Project) -> None:
    use_canary(
        project,
        "[{weight: 20, analysis: {window: 4s, min_requests: 20}}, {weight: 100}]",
        ", analysis: {max_error_rate: 0.05}",
    )
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", 'env: {GREETING: hello, ERROR_RATE: "0.5"}')
    before = fleet_requests(project)
    with Load(project.url, clients=8, max_seconds=90) as load:
        out = project.kiln("deploy", check=False)
        result = load.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "analysis at step 1 (canary 20%) failed: error rate" in out.stderr
    assert "release 1 still serves" in out.stderr

    # Every failure the clients saw is a 5xx the router counted on the canary.
    seen = fleet_requests(project)
    seen.subtract(before)
    assert result.failed > 0
    assert result.failed == seen["hello.dev.web.r2", "5xx"]
    assert seen["hello.dev.web.r1", "5xx"] == 0
    # The canary had its 20 % and no more: far fewer requests than the stable fleet.
    assert seen["hello.dev.web.r2", "requests"] < seen["hello.dev.web.r1", "requests"]

    # Rolled back: the stable fleet serves everything, the canary is gone.
    with Load(project.url, clients=4, max_requests=200) as load:
        clean = load.wait(timeout=60)
    assert clean.failed == 0, clean.errors
    assert set(clean.bodies) == {"v1 hello"}
    st = project.status()
    assert st["current_release"]["number"] == 1
    assert st["last_deployment"]["status"] == "failed"
    assert "error rate" in st["last_deployment"]["reason"]
    assert project.instances("hello.dev.web.r2") == 0
    assert project.instances("hello.dev.web.r1") == 3
    (verdict,) = [e for e in events(project, "deploy.analysis") if e["detail"]["result"] == "fail"]
    numbers = verdict["detail"]["services"]["web"]["canary"]
    assert numbers["errors"] > 0
    assert numbers["requests"] >= 20


def test_healthy_canary_reaches_100_and_router_counts_match_the_clients(
    local_project: Project,
) -> None:
    project = local_project
    use_canary(
        project,
        "[{weight: 30, analysis: {window: 4s, min_requests: 20, max_error_rate: 0.01,"
        " max_error_rate_vs_stable: 0.01, max_p99_ratio_vs_stable: 20}},"
        " {weight: 60, pause: 1s}]",
    )
    project.kiln("deploy")
    project.set_version("v2")
    before = fleet_requests(project)
    with Load(project.url, clients=6, max_seconds=90) as load:
        deploy = project.popen("deploy")
        # kiln status in another terminal shows the live numbers of the analysis.
        reach(project, deploy, "analysis", kind="analyze")
        status = project.kiln("status").stdout
        code, stdout, stderr = finish(deploy)
        result = load.stop()
    assert "analysis at canary step 1 (30%)" in status
    assert "hello.dev.web.r2 (canary)" in status
    assert "hello.dev.web.r1 (stable)" in status
    assert code == 0, stderr
    assert "release 2 serves hello/dev" in stdout
    assert "analysis at step 1 (canary 30%) passed" in stderr
    assert result.failed == 0, result.errors
    assert {"v1 hello", "v2 hello"} <= set(result.bodies)

    seen = fleet_requests(project)
    seen.subtract(before)
    counted = sum(n for (_, what), n in seen.items() if what == "requests")
    # Clients count a request when its answer arrives; the router when it has sent
    # it. They differ by at most the requests in flight when the load stopped.
    assert abs(counted - (result.ok + result.failed)) <= 6
    st = project.status()
    assert st["current_release"]["number"] == 2
    assert st["weights"] == {"hello.dev.web.r2": 100}
    assert project.serving() == {"v2 hello"}
    (passed,) = events(project, "deploy.analysis")
    assert passed["detail"]["result"] == "pass"


def test_header_reaches_the_canary_at_weight_zero_then_advance(project: Project) -> None:
    use_canary(project, "[{weight: 0, pause: manual}, {weight: 50, pause: manual}]")
    project.kiln("deploy")
    project.set_version("v2")
    deploy = project.popen("deploy")
    reach(project, deploy, "the manual pause", step=1)

    assert project.serving(20) == {"v1 hello"}
    assert get_with(project, "X-Kiln-Fleet", "canary") == "v2 hello"
    assert get_with(project, "x-kiln-fleet", "stable") == "v1 hello"
    out = project.kiln("status")
    assert "paused at canary step 1 (0%) until `kiln advance`" in out.stdout

    project.kiln("advance", "-m", "header checks look fine")
    reach(project, deploy, "step 2", step=2)
    assert project.status()["weights"] == {"hello.dev.web.r1": 50, "hello.dev.web.r2": 50}
    project.kiln("advance")
    code, _, err = finish(deploy)
    assert code == 0, err
    assert project.serving() == {"v2 hello"}
    gates = [e["detail"]["gate"] for e in events(project, "deploy.gate")]
    assert gates == ["advance", "advance"]


def test_pause_advance_and_abort_from_another_process(local_project: Project) -> None:
    project = local_project
    use_canary(project, "[{weight: 20, pause: 2s}, {weight: 50, pause: manual}]")
    project.kiln("deploy")
    project.set_version("v2")
    deploy = project.popen("deploy")
    reach(project, deploy, "step 1's pause", step=1)
    project.kiln("pause", "-m", "looking at dashboards")
    # Held: the 2s pause is long over, and still at step 1.
    wait_for(lambda: "paused" in project.kiln("status").stdout, what="status")

    time.sleep(3)
    assert running_progress(project).get("step") == 1
    assert deploy.poll() is None

    project.kiln("advance")  # lifts the pause; the 2s are over, so step 2 comes
    reach(project, deploy, "step 2", step=2)
    out = project.kiln("abort", "-m", "bad numbers")
    assert "asked deployment 2 (release 2) to abort" in out.stdout
    code, _, err = finish(deploy)
    assert code == 1
    assert "aborted: kiln abort by" in err
    assert "(bad numbers)" in err
    assert project.serving(20) == {"v1 hello"}
    assert project.instances("hello.dev.web.r2") == 0
    assert project.status()["weights"] == {"hello.dev.web.r1": 100}


def test_gates_without_a_running_deployment_are_refused(project: Project) -> None:
    project.kiln("deploy")
    for gate in ("advance", "pause", "abort"):
        out = project.kiln(gate, check=False)
        assert out.returncode == 1
        assert out.stderr.strip() == "error: no deployment is running in hello/dev"


def test_progress_deadline_ends_a_stuck_canary(local_project: Project) -> None:
    project = local_project
    use_canary(project, "[{weight: 10, pause: manual}]", ", progress_deadline: 4s")
    project.kiln("deploy")
    project.set_version("v2")
    out = project.kiln("deploy", check=False)
    assert out.returncode == 1
    assert "progress deadline (4s) passed" in out.stderr
    assert project.serving() == {"v1 hello"}
    assert project.instances("hello.dev.web.r2") == 0


def test_an_inconclusive_analysis_fails_at_the_deadline(local_project: Project) -> None:
    project = local_project
    use_canary(
        project,
        "[{weight: 50, analysis: {window: 1s, min_requests: 1000, max_error_rate: 0.01}}]",
        ", progress_deadline: 4s",
    )
    project.kiln("deploy")
    project.set_version("v2")
    out = project.kiln("deploy", check=False)  # no traffic: never enough requests
    assert out.returncode == 1
    assert "progress deadline (4s) passed during the analysis at step 1 (canary 50%)" in out.stderr
    assert "canary: 0 of 1000 requests needed" in out.stderr
    assert project.serving() == {"v1 hello"}
    (stopped,) = events(project, "deploy.analysis")
    assert stopped["detail"]["result"] == "stopped"


def test_rollback_aborts_a_canary_whose_kiln_died(local_project: Project) -> None:
    project = local_project
    use_canary(project, "[{weight: 25, pause: manual}]")
    project.kiln("deploy")
    project.set_version("v2")
    died = project.kiln("deploy", check=False, extra_env={"KILN_FAILPOINT": "before:pause"})
    assert died.returncode == -9
    out = project.kiln("rollback")  # drives the dead deployment's failure path itself
    assert "deployment 2 failed; release 1 serves hello/dev" in out.stdout
    assert project.serving(20) == {"v1 hello"}
    assert project.instances("hello.dev.web.r2") == 0
    assert project.status()["current_release"]["number"] == 1  # not one release too far


def test_rollback_during_a_canary_aborts_it_and_after_one_is_immediate(
    local_project: Project,
) -> None:
    project = local_project
    use_canary(project, "[{weight: 25, pause: manual}]")
    project.kiln("deploy")
    project.set_version("v2")
    deploy = project.popen("deploy")
    reach(project, deploy, "the pause", step=1)
    out = project.kiln("rollback")
    assert "deployment 2 failed; release 1 serves hello/dev" in out.stdout
    code, _, _ = finish(deploy)
    assert code == 1
    assert project.serving(20) == {"v1 hello"}

    # A canary that went through, then a rollback: no steps, no pause, at once.
    project.edit_spec("pause: manual", "pause: 1s")
    project.kiln("deploy")
    assert project.serving() == {"v2 hello"}
    project.kiln("rollback")
    assert project.serving() == {"v1 hello"}
    assert project.status()["last_deployment"]["strategy"] == "blue-green"

"""Rolling deployments end to end: batches under real traffic, and a batch that fails."""

from __future__ import annotations

from kiln.testing.load import Load
from tests.integration.harness import BLUE_GREEN, Project, wait_for


def use_rolling(project: Project, surge: str, unavailable: str) -> None:
    project.edit_spec(
        BLUE_GREEN,
        f"strategy: {{type: rolling, max_surge: {surge}, max_unavailable: {unavailable}}}",
    )


def test_rolling_under_load_fails_no_request(project: Project) -> None:
    use_rolling(project, "1", "0")
    project.kiln("deploy")
    project.set_version("v2")
    with Load(project.url, clients=12, max_seconds=120) as load:
        out = project.kiln("deploy")
        wait_for(
            lambda: set(load.snapshot().recent[-30:]) == {"v2 hello"},
            what="the load's latest answers to all be v2",
        )
        result = load.stop()
    assert result.failed == 0, result.errors
    assert {"v1 hello", "v2 hello"} <= set(result.bodies)
    # One instance at a time: three batches, each grow / routes / shrink.
    assert out.stderr.count("grow ") == 3, out.stderr
    assert out.stderr.count("shrink ") == 3, out.stderr
    st = project.status()
    assert st["current_release"]["number"] == 2
    assert project.instances("hello.dev.web.r2") == 3
    assert project.instances("hello.dev.web.r1") == 0
    assert st["weights"] == {"hello.dev.web.r2": 100}


def test_a_failing_batch_rolls_the_replaced_batches_back(local_project: Project) -> None:
    project = local_project
    use_rolling(project, "1", "0")
    project.kiln("deploy")
    project.set_version("v2")
    # The first v2 instance starts; every later one exits at once: batch 2 fails.
    project.edit_spec("env: {GREETING: hello}", 'env: {GREETING: hello, CRASH_AFTER: "1"}')
    with Load(project.url, clients=8, max_seconds=120) as load:
        out = project.kiln("deploy", check=False)
        result = load.stop()
    assert out.returncode == 1
    assert "grow failed" in out.stderr
    assert "exited before it was healthy" in out.stderr
    assert result.failed == 0, result.errors
    # The batch replaced before the failure came back: three v1 instances serve again.
    assert project.serving(20) == {"v1 hello"}
    assert project.instances("hello.dev.web.r1") == 3
    assert project.instances("hello.dev.web.r2") == 0
    st = project.status()
    assert st["current_release"]["number"] == 1
    assert st["weights"] == {"hello.dev.web.r1": 100}


def test_limits_that_round_to_nothing_are_refused_before_anything_changes(
    local_project: Project,
) -> None:
    project = local_project
    use_rolling(project, "0", "25%")  # 25 % of 3 replicas rounds down to 0
    out = project.kiln("deploy", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: service web: max_surge and max_unavailable both come to 0 of 3 replicas; "
        "nothing could be replaced"
    )
    assert project.status()["current_release"] is None

"""Drift end to end: hand-made changes to real instances and the real router are found,
kept as evidence, and wiped away by replacement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kiln.drift import capture, patch
from kiln.model import FileChange
from kiln.router.client import RouterClient
from kiln.testing.load import Load
from tests.engines import docker_or_skip
from tests.integration.harness import Project, wait_for


def findings(project: Project, *extra: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(project.kiln("drift", "--json", *extra).stdout)
    return data


def live_instances(project: Project) -> list[dict[str, Any]]:
    st = project.status()
    return [i for f in st["fleets"] if f["state"] == "active" for i in f["instances"] if i["alive"]]


def tamper(project: Project, instance: dict[str, Any]) -> str:
    """Change what runs inside ``instance`` by hand; what the finding should name."""
    if project.provider == "docker":
        subprocess.run(
            ["docker", "exec", instance["ref"], "sh", "-c", "echo hacked > /tmp/x"], check=True
        )
        return "sh -c echo hacked > /tmp/x"
    # Local: root edits the instance's artifact in place (read-only by mode only for root).
    artifact = project.state / "artifacts" / instance["labels"]["artifact"].split(":")[1]
    artifact.chmod(0o755)
    (artifact / "VERSION").chmod(0o644)
    (artifact / "VERSION").write_text("hacked\n")
    return "VERSION"


def test_a_tampered_instance_is_found_and_replaced_under_load(project: Project) -> None:
    project.kiln("deploy")
    assert findings(project) == []
    victim = live_instances(project)[0]
    evidence = tamper(project, victim)

    (found, *others) = findings(project)
    assert found["finding"]["kind"] == "in_instance_change"
    if project.provider == "docker":
        assert others == []
        assert found["finding"]["subject"] == victim["id"]
        assert found["finding"]["detail"]["execs"] == [evidence]
    else:  # the artifact is shared: every instance of it runs changed files
        assert len(others) == 2
        assert [c["path"] for c in found["finding"]["changes"]] == [evidence]
    shown = project.kiln("drift", "show", str(found["id"])).stdout
    assert "in_instance_change" in shown
    assert evidence in shown
    if project.provider == "local":
        # The tweak, kept as a patch against the build context: it becomes code.
        (kept,) = found["finding"]["evidence"]
        assert kept["content"] == "hacked\n"
        assert "-v1\n+hacked\n" in kept["diff"]
        patch_file = project.root / "tweak.patch"
        project.kiln("drift", "export", str(found["id"]), "-o", str(patch_file))
        subprocess.run(
            ["patch", "-p1", "-i", str(patch_file)], cwd=project.root / "app", check=True
        )
        assert (project.root / "app" / "VERSION").read_text() == "hacked\n"
        (project.root / "app" / "VERSION").write_text("v1\n")  # the spec's build again
    else:
        none = project.kiln("drift", "export", str(found["id"]), check=False)
        assert none.returncode == 1
        assert "no text change that maps to a build context file" in none.stderr

    with Load(project.url, clients=8, max_seconds=90) as load:
        out = project.kiln("reconcile")
        result = load.stop()
    assert result.failed == 0, result.errors
    assert f"finding {found['id']} (in_instance_change {victim['id']}): replaced" in out.stdout
    now = live_instances(project)
    assert len(now) == 3
    assert victim["id"] not in {i["id"] for i in now}
    assert project.serving() == {"v1 hello"}
    assert findings(project) == []  # and the replacements are clean
    resolved = findings(project, "--all")
    assert all(r["resolution"].startswith("replaced") for r in resolved)
    events = json.loads(project.kiln("audit", "log", "--json", "-n", "200").stdout)
    actions = [e["action"] for e in events]
    assert "drift.found" in actions
    assert "drift.enforced" in actions


def test_a_drifted_instances_writable_area_is_kept_as_evidence(local_project: Project) -> None:
    project = local_project
    project.kiln("deploy")
    victim = live_instances(project)[0]
    scratch = project.state / "scratch" / victim["id"]  # the instance's HOME and TMPDIR
    (scratch / "hotfix.sh").write_text("echo tweak\n")
    tamper(project, victim)
    mine = next(f for f in findings(project) if f["finding"]["subject"] == victim["id"])
    evidence = {e["path"]: e for e in mine["finding"]["evidence"]}
    assert evidence["scratch/hotfix.sh"]["content"] == "echo tweak\n"
    assert evidence["VERSION"]["content"] == "hacked\n"  # the changed artifact file too
    project.kiln("reconcile")
    assert not scratch.exists()  # a replacement starts with an empty scratch...
    shown = project.kiln("drift", "show", str(mine["id"])).stdout
    assert "evidence: added scratch/hotfix.sh, 11 bytes" in shown  # ...the evidence stays
    # Not code of the build context: nothing of it goes into the patch.
    assert "hotfix" not in project.kiln("drift", "export", str(mine["id"])).stdout


def test_missing_and_unknown_instances(project: Project) -> None:
    project.kiln("deploy")
    victim, model = live_instances(project)[:2]
    if project.provider == "docker":
        client = docker_or_skip()
        # Removed by hand; and one started by hand with kiln's labels copied.
        client.containers.get(victim["ref"]).remove(force=True)
        template = client.containers.get(model["ref"])
        client.containers.run(
            template.image.id,
            detach=True,
            labels={
                **template.labels,
                "kiln.fleet": "hello.dev.web.by-hand",
                "kiln.instance": "hand-started",
            },
            environment={"PORT": "8000"},
        )
        client.close()
        stray_id = "hand-started"
    else:
        os.kill(int(victim["ref"].split(":")[0]), signal.SIGKILL)
        stray_id = ""
    kinds = {f["finding"]["kind"] for f in findings(project)}
    assert "missing_instance" in kinds
    if stray_id:
        assert "unknown_instance" in kinds
    out = project.kiln("reconcile")
    assert "missing_instance hello.dev.web.r1): replaced" in out.stdout
    if stray_id:
        assert "(unknown_instance hand-started): destroyed" in out.stdout
    assert len(live_instances(project)) == 3
    assert findings(project) == []
    assert project.serving() == {"v1 hello"}


def test_a_stranger_on_a_dead_instances_port_is_named_and_stopped(
    local_project: Project, tmp_path: Path
) -> None:
    project = local_project
    project.kiln("deploy")
    victim = live_instances(project)[0]
    os.kill(int(victim["ref"].split(":")[0]), signal.SIGKILL)
    # Someone starts their own server on the dead instance's port: the router's
    # route still names that backend, so it would get traffic.
    (tmp_path / "index.html").write_text("stranger\n")
    port = victim["address"].rpartition(":")[2]
    stranger = subprocess.Popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", port],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "stranger" in project.serving(30), 30, "the stranger to get traffic")
        by_kind = {f["finding"]["kind"]: f["finding"] for f in findings(project)}
        unknown = by_kind["unknown_instance"]
        assert unknown["subject"] == victim["address"]
        assert unknown["detail"]["process"]["pid"] == stranger.pid
        assert "http.server" in unknown["detail"]["process"]["command"]
        assert f"process {stranger.pid} (" in unknown["summary"]
        assert "missing_instance" in by_kind

        out = project.kiln("reconcile")
        assert f"stopped process {stranger.pid}" in out.stdout
        assert stranger.wait(timeout=15) is not None
        assert project.serving(30) == {"v1 hello"}
        assert findings(project) == []
    finally:
        stranger.kill()
        stranger.wait()


def restart_by_hand(project: Project, victim: dict[str, Any], tmp_path: Path) -> None:
    """Replace ``victim`` by hand, as its release runs it but for a tweak: another
    GREETING (and on docker a host directory mounted, on a writable root)."""
    if project.provider == "docker":
        client = docker_or_skip()
        old = client.containers.get(victim["ref"])
        env = dict(e.partition("=")[::2] for e in old.attrs["Config"]["Env"])
        old.remove(force=True)
        client.containers.run(
            old.image.id,
            detach=True,
            labels=old.labels,
            environment={**env, "GREETING": "tweaked"},
            volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
            ports={"8000/tcp": ("127.0.0.1", None)},
        )
        client.close()
        return
    pid = int(victim["ref"].split(":")[0])
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().partition("=")[::2] for item in raw if item)
    os.kill(pid, signal.SIGKILL)
    artifact = project.state / "artifacts" / victim["labels"]["artifact"].split(":")[1]
    proc = subprocess.Popen(
        ["python3", "server.py"],
        cwd=artifact,
        env={**env, "GREETING": "tweaked"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    project.started.append(proc)  # type: ignore[arg-type]


def test_an_instance_restarted_by_hand_with_a_tweak_is_config_drift(
    project: Project, tmp_path: Path
) -> None:
    project.kiln("deploy")
    victim = live_instances(project)[0]
    restart_by_hand(project, victim, tmp_path)
    wait_for(
        lambda: (
            victim["ref"] not in {i["ref"] for i in live_instances(project)}
            and len(live_instances(project)) == 3
        ),
        what="the hand-started instance to be seen",
    )
    (found,) = findings(project)
    assert found["finding"]["kind"] == "config_drift"
    assert found["finding"]["subject"] == victim["id"]
    runtime = found["finding"]["detail"]["runtime"]
    assert runtime["env"] == {"changed": ["GREETING"]}
    assert "tweaked" not in json.dumps(found)  # names, never values
    if project.provider == "docker":
        # Without the data volume, with a host directory, on a writable root.
        assert runtime["mounts"] == {
            "expected": {"/data/uploads": "volume:uploads"},
            "seen": {"/mnt": f"bind:{tmp_path}:ro", "/": "rootfs:writable"},
        }
        assert "env and mounts" in found["finding"]["summary"]
    out = project.kiln("reconcile")
    assert f"(config_drift {victim['id']}): replaced" in out.stdout
    assert victim["id"] not in {i["id"] for i in live_instances(project)}
    assert len(live_instances(project)) == 3
    assert findings(project) == []
    assert project.serving(30) == {"v1 hello"}


def test_a_hand_edited_route_is_restored(local_project: Project) -> None:
    project = local_project
    project.kiln("deploy")
    router = RouterClient(project.state)
    table = router.table()
    [route] = table.routes
    # Someone points the route at one backend only.
    [fleet] = route.fleets
    edited = replace(route, fleets=(replace(fleet, backends=fleet.backends[:1]),))
    router.apply(replace(table, routes=(edited,)))

    (found,) = findings(project)
    assert found["finding"]["kind"] == "route_drift"
    assert found["finding"]["summary"] == (
        "route hello/dev/web was changed in the router since kiln applied it"
    )
    out = project.kiln("reconcile")
    assert "routes restored" in out.stdout
    [restored] = router.table().routes
    assert sorted(restored.fleets[0].backends) == sorted(fleet.backends)
    assert findings(project) == []


def test_quarantine_takes_a_tampered_instance_out_at_once_and_ends_it_later(
    docker_project: Project,
) -> None:
    project = docker_project
    project.edit_spec(
        "    provider: docker\n", "    provider: docker\n    drift: {quarantine: 3s}\n"
    )
    project.kiln("deploy")
    victim = live_instances(project)[0]
    tamper(project, victim)
    with Load(project.url, clients=8, max_seconds=90) as load:
        out = project.kiln("reconcile")
        result = load.stop()
    assert result.failed == 0, result.errors
    assert "quarantined until" in out.stdout
    # Out of the route, still running for inspection; a new instance serves instead.
    [route] = RouterClient(project.state).table().routes
    backends = {b for f in route.fleets for b in f.backends}
    assert victim["address"] not in backends
    assert len(backends) == 3
    assert victim["ref"] in {i["ref"] for i in live_instances(project)}
    assert findings(project) == []  # not found again while quarantined

    time.sleep(3)
    out = project.kiln("reconcile")
    assert f"quarantine over: {victim['id']} destroyed" in out.stdout
    assert victim["ref"] not in {i["ref"] for i in live_instances(project)}
    assert len(live_instances(project)) == 3


def test_report_mode_records_and_changes_nothing(local_project: Project) -> None:
    project = local_project
    project.edit_spec(
        "    provider: local\n", "    provider: local\n    drift: {on_drift: report}\n"
    )
    project.kiln("deploy")
    victim = live_instances(project)[0]
    os.kill(int(victim["ref"].split(":")[0]), signal.SIGKILL)
    out = project.kiln("reconcile")
    assert "open finding(s), reported only (on_drift: report)" in out.stdout
    assert len(live_instances(project)) == 2
    (found,) = findings(project)
    assert found["resolution"] == ""


def test_drift_of_an_unknown_finding(local_project: Project) -> None:
    out = local_project.kiln("drift", "show", "42", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == "error: no drift finding 42 in hello"


def test_the_patch_applies_to_the_build_context(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("one\ntwo")  # no newline at the end
    (tmp_path / "gone.txt").write_text("bye\n")
    evidence = [
        capture(FileChange("keep.txt", "changed"), "keep.txt", b"one\nTWO", b"one\ntwo"),
        capture(FileChange("gone.txt", "deleted"), "gone.txt", None, b"bye\n"),
        capture(FileChange("new.txt", "added"), "new.txt", b"hello\n", None),
    ]
    (tmp_path / "fix.patch").write_text(patch(evidence))
    subprocess.run(["patch", "-p1", "-i", "fix.patch"], cwd=tmp_path, check=True)
    assert (tmp_path / "keep.txt").read_text() == "one\nTWO"
    assert not (tmp_path / "gone.txt").exists()
    assert (tmp_path / "new.txt").read_text() == "hello\n"

"""Drift comparison: every kind of finding from plain data, and what is not drift."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kiln.drift import (
    Expected,
    compare,
    compare_listeners,
    compare_routes,
    listener_of,
    runtime_drift,
    stray_backends,
)
from kiln.model import (
    FileChange,
    FleetRoute,
    HealthCheck,
    Instance,
    Route,
    Runtime,
    ServiceRelease,
    StrategyConfig,
)
from kiln.model.drift import DriftAction, DriftKind, HostProcess

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WEB = Expected("a.dev.web.r1", "web", 2, "sha256:aaa", frozenset({"sha256:cfg", "sha256:cfg2"}))


def inst(n: int, fleet: str = WEB.fleet, alive: bool = True, **labels: str) -> Instance:
    return Instance(
        id=f"{fleet}.{n}",
        app="a",
        env="dev",
        service="web",
        fleet=fleet,
        release=1,
        address=f"127.0.0.1:{9000 + n}",
        ref=f"ref{n}",
        alive=alive,
        started_at=T0 + timedelta(seconds=n),
        labels={"artifact": "sha256:aaa", "config": "sha256:cfg", **labels},
    )


def kinds(findings: list[object]) -> list[tuple[str, str]]:
    return [(f.kind.value, f.subject) for f in findings]  # type: ignore[attr-defined]


def test_a_fleet_as_released_has_no_drift() -> None:
    assert compare("dev", [WEB], [inst(1), inst(2)], {}) == []


def test_unknown_and_extra_instances_are_to_be_destroyed() -> None:
    stray = inst(3, fleet="a.dev.web.r9")
    found = compare("dev", [WEB], [inst(1), inst(2), inst(5), stray], {})
    assert kinds(found) == [
        ("unknown_instance", "a.dev.web.r9.3"),
        ("unknown_instance", "a.dev.web.r1.5"),  # the newest one past the replica count
    ]
    assert "one more than the 2 of a.dev.web.r1" in found[1].summary
    assert {f.action for f in found} == {DriftAction.DESTROY}


def test_missing_instances_name_the_dead() -> None:
    found = compare("dev", [WEB], [inst(1), inst(2, alive=False)], {})
    assert kinds(found) == [("missing_instance", WEB.fleet)]
    assert found[0].detail == {"alive": 1, "replicas": 2, "dead": [f"{WEB.fleet}.2"]}
    assert found[0].action is DriftAction.REPLACE


def test_config_drift_by_label_or_by_what_actually_runs() -> None:
    other_config = inst(1, config="sha256:other")
    other_image = replace(inst(2), running_artifact="sha256:evil")
    found = compare("dev", [WEB], [other_config, other_image], {})
    assert kinds(found) == [
        ("config_drift", f"{WEB.fleet}.1"),
        ("config_drift", f"{WEB.fleet}.2"),
    ]
    assert found[0].detail == {
        "expected": {"config": "sha256:cfg"},
        "seen": {"config": "sha256:other"},
    }
    assert found[1].detail["seen"] == {"artifact": "sha256:evil"}


def test_either_digest_of_the_release_config_is_the_release() -> None:
    # A newer kiln may digest the same config differently: both digests are its own.
    assert compare("dev", [WEB], [inst(1, config="sha256:cfg2"), inst(2)], {}) == []


def test_in_instance_changes_carry_the_paths() -> None:
    edits = [FileChange("/app/index.html", "changed"), FileChange("/app/x", "added")]
    found = compare("dev", [WEB], [inst(1), inst(2)], {f"{WEB.fleet}.1": edits})
    (finding,) = found
    assert finding.kind is DriftKind.IN_INSTANCE_CHANGE
    assert finding.changes == tuple(edits)
    assert finding.summary == (
        "instance a.dev.web.r1.1: 2 file(s) changed (/app/index.html, /app/x)"
    )
    assert finding.action is DriftAction.CAPTURE_REPLACE


def test_commands_run_from_outside_are_an_in_instance_change() -> None:
    ran = {f"{WEB.fleet}.2": ["sh -c echo hacked > /tmp/x"]}
    (finding,) = compare("dev", [WEB], [inst(1), inst(2)], {}, ran)
    assert finding.kind is DriftKind.IN_INSTANCE_CHANGE
    assert finding.subject == f"{WEB.fleet}.2"
    assert finding.detail == {"execs": ["sh -c echo hacked > /tmp/x"]}
    assert "1 command(s) run from outside (sh -c echo hacked > /tmp/x)" in finding.summary


def route(weight: int = 100, backends: tuple[str, ...] = ("127.0.0.1:1",)) -> Route:
    return Route("a/dev/web", "127.0.0.1:8080", (FleetRoute(WEB.fleet, weight, backends),))


def test_route_drift() -> None:
    assert compare_routes("dev", [route()], [route()]) == []
    # Backend order is not drift.
    two = ("127.0.0.1:1", "127.0.0.1:2")
    assert compare_routes("dev", [route(backends=two)], [route(backends=two[::-1])]) == []
    (changed,) = compare_routes("dev", [route()], [route(backends=("127.0.0.1:6666",))])
    assert changed.summary == "route a/dev/web was changed in the router since kiln applied it"
    assert changed.action is DriftAction.RESTORE
    (gone,) = compare_routes("dev", [route()], [])
    assert "is gone" in gone.summary
    (added,) = compare_routes("dev", [], [route()])
    assert "was added" in added.summary


def test_stray_backends_are_those_no_live_instance_answers_on() -> None:
    backends = ("127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:7777", "10.0.0.5:9003")
    live, dead = inst(1), inst(2, alive=False)
    assert stray_backends([route(backends=backends)], [live, dead]) == {
        9002: "a/dev/web",  # a dead instance's port: whoever listens there now is not kiln's
        7777: "a/dev/web",  # a backend no instance ever had (a hand-edited route)
    }
    assert stray_backends([route(backends=("127.0.0.1:9001",))], [live]) == {}


def test_a_process_on_a_stray_backend_is_an_unknown_instance() -> None:
    strays = {9002: "a/dev/web"}
    stranger = HostProcess(9002, 4242, 123456, "python3 -m http.server 9002")
    elsewhere = HostProcess(5555, 1, 1, "init")  # not a backend: none of kiln's business
    (found,) = compare_listeners("dev", strays, [stranger, elsewhere])
    assert kinds([found]) == [("unknown_instance", "127.0.0.1:9002")]
    assert found.summary == (
        "process 4242 (python3 -m http.server 9002) listens on backend 127.0.0.1:9002 "
        "of route a/dev/web, and kiln did not launch it"
    )
    assert found.action is DriftAction.DESTROY
    assert listener_of(found) == stranger  # enough to stop exactly that process
    assert listener_of(compare("dev", [WEB], [inst(1), inst(2), inst(3)], {})[0]) is None


SPEC = ServiceRelease(
    service="web",
    artifact="sha256:aaa",
    command=("python3", "server.py"),
    port=8000,
    replicas=2,
    env={"GREETING": "hello"},
    secrets={"TOKEN": "hmac:t"},  # the engine digests what runs the same way
    health=HealthCheck(),
    volumes={"uploads": "/data/uploads"},
    strategy=StrategyConfig(),
)
AS_RELEASED = Runtime(
    env={"GREETING": "hello", "TOKEN": "hmac:t", "PATH": "/bin"},
    base_env={"PATH": "/bin"},
    command=("python3", "server.py"),
    mounts={"/data/uploads": "volume:uploads"},
)


def test_an_instance_running_as_released_has_no_runtime_drift() -> None:
    assert runtime_drift(SPEC, AS_RELEASED) == {}


def test_runtime_drift_names_env_without_values() -> None:
    hand_run = replace(
        AS_RELEASED,
        env={"GREETING": "hi", "TOKEN": "hmac:other", "DEBUG": "1", "PATH": "/bin"},
    )
    aspects = runtime_drift(replace(SPEC, env={"GREETING": "hello", "MODE": "x"}), hand_run)
    assert aspects == {
        "env": {"added": ["DEBUG"], "removed": ["MODE"], "changed": ["GREETING", "TOKEN"]}
    }
    assert "hi" not in repr(aspects)
    assert "hmac:other" not in repr(aspects)


def test_an_image_default_is_the_command_of_a_release_without_one() -> None:
    runtime = replace(AS_RELEASED, command=("/bin/app",), default_command=("/bin/app",))
    assert runtime_drift(replace(SPEC, command=()), runtime) == {}
    (aspect,) = runtime_drift(SPEC, runtime)
    assert aspect == "command"
    assert runtime_drift(SPEC, replace(AS_RELEASED, command=None)) == {}  # not observable


def test_mounts_and_a_writable_root_are_runtime_drift() -> None:
    runtime = replace(
        AS_RELEASED,
        mounts={"/data/uploads": "volume:uploads", "/mnt": "bind:/etc", "/": "rootfs:writable"},
    )
    assert runtime_drift(SPEC, runtime) == {
        "mounts": {
            "expected": {"/data/uploads": "volume:uploads"},
            "seen": {
                "/data/uploads": "volume:uploads",
                "/mnt": "bind:/etc",
                "/": "rootfs:writable",
            },
        }
    }
    assert runtime_drift(SPEC, replace(AS_RELEASED, mounts=None)) == {}  # processes


def test_a_wrappers_additions_count_only_where_the_env_is_not_exact() -> None:
    shimmed = replace(AS_RELEASED, env={**AS_RELEASED.env, "PYENV_ROOT": "/x"}, exact_env=False)
    assert runtime_drift(SPEC, shimmed) == {}
    changed = replace(shimmed, env={**shimmed.env, "GREETING": "hi"})
    assert runtime_drift(SPEC, changed) == {"env": {"changed": ["GREETING"]}}


def test_runtime_drift_is_config_drift_of_the_instance() -> None:
    want = replace(WEB, spec=SPEC)
    tweaked = replace(AS_RELEASED, env={**AS_RELEASED.env, "DEBUG": "1"})
    runtimes = {inst(1).id: tweaked, inst(2).id: AS_RELEASED}
    (found,) = compare("dev", [want], [inst(1), inst(2)], {}, runtimes=runtimes)
    assert kinds([found]) == [("config_drift", inst(1).id)]
    assert found.summary == (
        f"instance {inst(1).id} runs another env than release 1 of web (DEBUG added)"
    )
    assert found.detail == {"runtime": {"env": {"added": ["DEBUG"]}}}
    assert found.action is DriftAction.REPLACE
    # Without the release's service, runtimes are not judged.
    assert compare("dev", [WEB], [inst(1), inst(2)], {}, runtimes=runtimes) == []

"""Comparing an environment's expected fleets and routes with what a provider and the
router report. Pure: the engine gathers the observations and acts on the findings.

Instances of fleets a deployment is moving are not judged here: the engine
compares only environments with no deployment running.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kiln.model import FileChange, Instance, Route, Runtime, ServiceRelease
from kiln.model.drift import DriftKind, Finding, HostProcess


@dataclass(frozen=True)
class Expected:
    """A fleet kiln keeps running (active or retained) and what its instances must be."""

    fleet: str
    service: str
    replicas: int
    artifact: str
    # The release's config digest as stored when the fleet was made, and as this kiln
    # computes it now (a newer kiln may digest the same config differently).
    configs: frozenset[str]
    # The release's service, to compare instances' runtimes with (None: not compared).
    spec: ServiceRelease | None = None


def compare(
    env: str,
    expected: Sequence[Expected],
    observed: Sequence[Instance],
    changes: Mapping[str, Sequence[FileChange]],
    execs: Mapping[str, Sequence[str]] | None = None,
    quarantined: frozenset[str] = frozenset(),
    runtimes: Mapping[str, Runtime] | None = None,
) -> list[Finding]:
    """Findings about instances: unknown, missing, configured otherwise, changed inside.

    ``changes``: instance id -> its in-instance file changes; ``execs``: instance id
    -> commands run inside it from outside; ``runtimes``: instance id -> what it
    runs with (secret values already digested as the release pins them). All
    three only for live instances of expected fleets; the engine asks the
    provider. Instances in ``quarantined`` were found before and are kept on
    purpose: they are not judged again.
    """
    execs = execs or {}
    runtimes = runtimes or {}
    by_fleet = {e.fleet: e for e in expected}
    findings: list[Finding] = []
    kept: dict[str, list[Instance]] = {e.fleet: [] for e in expected}
    for inst in sorted(observed, key=lambda i: (i.started_at is None, i.started_at, i.id)):
        if inst.id in quarantined:
            continue  # already found, out of the route, kept for inspection
        want = by_fleet.get(inst.fleet)
        if want is None:
            findings.append(_unknown(env, inst, "belongs to no fleet kiln runs"))
        elif inst.alive and len(kept[inst.fleet]) >= want.replicas:
            findings.append(
                _unknown(env, inst, f"is one more than the {want.replicas} of {want.fleet}")
            )
        elif inst.alive:
            kept[inst.fleet].append(inst)
            findings += _judge(
                env,
                want,
                inst,
                changes.get(inst.id, ()),
                execs.get(inst.id, ()),
                runtimes.get(inst.id),
            )
    for want in expected:
        alive = len(kept[want.fleet])
        if alive < want.replicas:
            dead = sorted(i.id for i in observed if i.fleet == want.fleet and not i.alive)
            findings.append(
                Finding(
                    kind=DriftKind.MISSING_INSTANCE,
                    env=env,
                    subject=want.fleet,
                    summary=f"fleet {want.fleet} has {alive} of {want.replicas} instances alive",
                    fleet=want.fleet,
                    detail={"alive": alive, "replicas": want.replicas, "dead": dead},
                )
            )
    return findings


def _unknown(env: str, inst: Instance, why: str) -> Finding:
    return Finding(
        kind=DriftKind.UNKNOWN_INSTANCE,
        env=env,
        subject=inst.id,
        summary=f"instance {inst.id} {why}",
        fleet=inst.fleet or None,
        instance_ref=inst.ref,
        detail={"labels": dict(inst.labels), "alive": inst.alive},
    )


def _judge(
    env: str,
    want: Expected,
    inst: Instance,
    changed: Sequence[FileChange],
    ran: Sequence[str],
    runtime: Runtime | None,
) -> list[Finding]:
    out = []
    config = inst.labels.get("config")
    seen = {
        "artifact": inst.running_artifact or inst.labels.get("artifact", ""),
        "config": config if config is not None else sorted(want.configs)[0],
    }
    wanted = {"artifact": want.artifact, "config": sorted(want.configs)[0]}
    differ = [k for k in ("artifact", "config") if seen[k] != wanted[k]]
    if "config" in differ and seen["config"] in want.configs:
        differ.remove("config")
    aspects = runtime_drift(want.spec, runtime) if want.spec and runtime else {}
    if differ or aspects:
        detail: dict[str, object] = {}
        if differ:
            detail["expected"] = {k: wanted[k] for k in differ}
            detail["seen"] = {k: seen[k] for k in differ}
        if aspects:
            detail["runtime"] = aspects
        aspect_list = " and ".join([*differ, *aspects])
        env_names = _env_names(aspects.get("env"))
        out.append(
            Finding(
                kind=DriftKind.CONFIG_DRIFT,
                env=env,
                subject=inst.id,
                summary=f"instance {inst.id} runs another {aspect_list} than release "
                f"{inst.release} "
                f"of {want.service}" + (f" ({env_names})" if env_names else ""),
                fleet=want.fleet,
                instance_ref=inst.ref,
                detail=detail,
            )
        )
    if changed or ran:
        what = []
        if changed:
            paths = ", ".join(c.path for c in changed[:3]) + (" …" if len(changed) > 3 else "")
            what.append(f"{len(changed)} file(s) changed ({paths})")
        if ran:
            what.append(f"{len(ran)} command(s) run from outside ({ran[0]})")
        out.append(
            Finding(
                kind=DriftKind.IN_INSTANCE_CHANGE,
                env=env,
                subject=inst.id,
                summary=f"instance {inst.id}: {'; '.join(what)}",
                fleet=want.fleet,
                instance_ref=inst.ref,
                changes=tuple(changed),
                detail={"execs": list(ran)} if ran else {},
            )
        )
    return out


def runtime_drift(spec: ServiceRelease, runtime: Runtime) -> dict[str, dict[str, object]]:
    """How an instance's runtime differs from its release, by aspect (env, command,
    mounts). Env differences are names only: values may be secrets."""
    aspects: dict[str, dict[str, object]] = {}
    want = {**runtime.base_env, **spec.env, **spec.secrets}
    have = runtime.env if runtime.exact_env else {k: v for k, v in runtime.env.items() if k in want}
    env = {
        "added": sorted(set(have) - set(want)),
        "removed": sorted(set(want) - set(have)),
        "changed": sorted(k for k in set(have) & set(want) if have[k] != want[k]),
    }
    if any(env.values()):
        aspects["env"] = {k: v for k, v in env.items() if v}
    if runtime.command is not None:
        command = spec.command or runtime.default_command
        if tuple(runtime.command) != tuple(command):
            aspects["command"] = {"expected": list(command), "seen": list(runtime.command)}
    if runtime.mounts is not None:
        mounts = {path: f"volume:{name}" for name, path in spec.volumes.items()}
        if runtime.mounts != mounts:
            aspects["mounts"] = {"expected": mounts, "seen": dict(runtime.mounts)}
    return aspects


def _env_names(env: object) -> str:
    if not isinstance(env, dict):
        return ""
    return "; ".join(f"{', '.join(names)} {how}" for how, names in env.items())


def stray_backends(routes: Sequence[Route], observed: Sequence[Instance]) -> dict[int, str]:
    """Port -> route name of each 127.0.0.1 backend of ``routes`` that no live instance
    kiln observes answers on: whatever listens there, kiln did not launch."""
    known = {i.address for i in observed if i.alive}
    strays: dict[int, str] = {}
    for route in routes:
        for fleet in route.fleets:
            for backend in fleet.backends:
                host, _, port = backend.rpartition(":")
                if backend not in known and host in ("127.0.0.1", "localhost") and port.isdigit():
                    strays.setdefault(int(port), route.name)
    return strays


def compare_listeners(
    env: str, strays: Mapping[int, str], processes: Sequence[HostProcess]
) -> list[Finding]:
    """An unknown instance for each process listening on a stray backend port."""
    return [
        Finding(
            kind=DriftKind.UNKNOWN_INSTANCE,
            env=env,
            subject=f"127.0.0.1:{p.port}",
            summary=f"process {p.pid} ({_short(p.command)}) listens on backend 127.0.0.1:"
            f"{p.port} of route {strays[p.port]}, and kiln did not launch it",
            instance_ref=f"{p.pid}:{p.start_time}",
            detail={
                "process": {
                    "port": p.port,
                    "pid": p.pid,
                    "start_time": p.start_time,
                    "command": p.command,
                },
                "route": strays[p.port],
            },
        )
        for p in processes
        if p.port in strays
    ]


def listener_of(finding: Finding) -> HostProcess | None:
    """The process an unknown-instance finding from ``compare_listeners`` names."""
    data = finding.detail.get("process")
    if not isinstance(data, dict):
        return None
    return HostProcess(data["port"], data["pid"], data["start_time"], data["command"])


def _short(command: str, limit: int = 60) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


def compare_routes(env: str, applied: Sequence[Route], actual: Sequence[Route]) -> list[Finding]:
    """Route drift: the router's routes of ``env`` against those kiln last applied."""
    want, have = {r.name: r for r in applied}, {r.name: r for r in actual}
    findings = []
    for name in sorted(set(want) | set(have)):
        a, b = want.get(name), have.get(name)
        if a is not None and b is not None and _same_route(a, b):
            continue
        what = "is gone" if b is None else "was added" if a is None else "was changed"
        findings.append(
            Finding(
                kind=DriftKind.ROUTE_DRIFT,
                env=env,
                subject=name,
                summary=f"route {name} {what} in the router since kiln applied it",
                detail={"applied": _describe(a), "router": _describe(b)},
            )
        )
    return findings


def _same_route(a: Route, b: Route) -> bool:
    return _describe(a) == _describe(b)


def _describe(route: Route | None) -> dict[str, object] | None:
    if route is None:
        return None
    return {
        "listen": route.listen,
        "header": route.header,
        "fleets": {
            f.fleet: {"weight": f.weight, "role": f.role, "backends": sorted(f.backends)}
            for f in route.fleets
        },
    }

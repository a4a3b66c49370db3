"""Sealed containers: what kiln creates, and how it reads them back as instances.

Every container is created from an image ID (never a tag) with kiln's labels, a
read-only root filesystem, a tmpfs ``/tmp``, ``no-new-privileges``, every
capability dropped but the spec's ``cap_add``, the spec's cpu/memory limits and
an ``on-failure`` restart policy. Env and secret values go into the container's
environment at create time and nowhere else: never into a label. (The
environment is visible to whoever can ``docker inspect``, i.e. engine admins;
that is the engine's nature and is documented, not hidden.)

This module builds requests and parses answers; it must never call the engine
itself (``provider.py`` does, inside ``engine_call``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from kiln.errors import PermanentProviderError, TransientProviderError
from kiln.model import FileChange, Fleet, Instance, Runtime, Secret, ServiceRelease

PREFIX = "kiln."
# Label keys (without PREFIX) that identify an instance; ``state`` scopes them
# to one state directory, so parallel test state dirs never see each other.
APP, ENV, SERVICE, RELEASE = "app", "env", "service", "release"
FLEET, INSTANCE, CONFIG, STATE = "fleet", "instance", "config", "state"
ARTIFACT, NETWORK, PORT, VOLUME = "artifact", "network", "port", "volume"

RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 3}
TMPFS = {"/tmp": "rw,nosuid,nodev"}
INIT_PATH = "/sbin/docker-init"  # where the engine bind-mounts its init (init=True)
UNKNOWN_ADDRESS = "127.0.0.1:0"  # a stopped container has no published port

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DIFF_KINDS: dict[int, Any] = {0: "changed", 1: "added", 2: "deleted"}


def label(key: str) -> str:
    return PREFIX + key


def label_filter(**values: str) -> list[str]:
    """An engine ``label`` filter matching every ``kiln.<key>=<value>``."""
    return [f"{label(k)}={v}" for k, v in values.items()]


def checked_name(name: str, what: str) -> str:
    # Engine object names (containers, volumes) allow only these characters.
    if not _NAME.match(name):
        raise PermanentProviderError(f"{what} {name!r} cannot be used in a Docker object name")
    return name


def volume_name(state: str, app: str, env: str, volume: str) -> str:
    return checked_name(f"kiln-{state}-{app}-{env}-{volume}", "volume")


def volume_var(name: str) -> str:
    """``KILN_VOLUME_<NAME>``: upper-cased, anything not alphanumeric becomes ``_``."""
    return "KILN_VOLUME_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def instance_labels(
    *, state: str, fleet: Fleet, spec: ServiceRelease, iid: str, port: int
) -> dict[str, str]:
    """kiln's labels for one container; built from names and digests only, never secrets."""
    values = {
        STATE: state,
        APP: fleet.app,
        ENV: fleet.env,
        SERVICE: spec.service,
        RELEASE: str(fleet.release),
        FLEET: fleet.id,
        INSTANCE: iid,
        CONFIG: spec.config_digest(),
        ARTIFACT: spec.artifact,
        NETWORK: spec.network,
        PORT: str(port),
    }
    return {label(k): v for k, v in values.items()}


def environment(spec: ServiceRelease, secrets: Mapping[str, Secret], port: int) -> dict[str, str]:
    """The container's environment; later entries win, so kiln's own cannot be overridden."""
    env = dict(spec.env)
    for name, secret in secrets.items():
        env[name] = secret.reveal()  # the one place a secret value goes
    env["PORT"] = str(port)
    for name, path in spec.volumes.items():
        env[volume_var(name)] = path
    return env


def check_network(spec: ServiceRelease) -> None:
    if spec.network not in ("published", "host"):
        raise PermanentProviderError(
            f"service {spec.service}: network must be published or host, not {spec.network!r}"
        )


def host_config(api: Any, spec: ServiceRelease, volumes: Mapping[str, str]) -> dict[str, Any]:
    """The sealed HostConfig; ``volumes`` maps engine volume names to mount paths."""
    check_network(spec)
    published = spec.network == "published"
    config: dict[str, Any] = api.create_host_config(
        read_only=True,
        tmpfs=dict(TMPFS),
        security_opt=["no-new-privileges"],
        cap_drop=["ALL"],
        cap_add=list(spec.cap_add) or None,
        nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
        mem_limit=spec.memory or None,
        restart_policy=dict(RESTART_POLICY),
        # Published on loopback only, on a port the engine picks (read back after start).
        port_bindings={spec.port: ("127.0.0.1",)} if published else None,
        network_mode=None if published else "host",
        binds={name: {"bind": path, "mode": "rw"} for name, path in volumes.items()} or None,
        # A tiny init as pid 1 forwards SIGTERM to apps that never installed a
        # handler (pid 1 ignores it), so destroy's grace period means something.
        init=True,
    )
    return config


def free_port(taken: Collection[int], attempts: int = 50) -> int:
    """A port on 127.0.0.1 that is free now and not in ``taken`` (host networking)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            return port
    raise TransientProviderError("no free port on 127.0.0.1", retry_after=1.0)


def published_port(attrs: Mapping[str, Any], port: int) -> int | None:
    """The host port ``port/tcp`` is published on, from ``inspect_container``."""
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp")
    for binding in bindings or []:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default


def from_summary(summary: Mapping[str, Any]) -> Instance:
    """An Instance from one entry of the engine's container list.

    A hand-started container may lack some of kiln's labels: it is still an
    instance (that is how drift sees it), with what its labels do say.
    """
    raw: Mapping[str, str] = summary.get("Labels") or {}
    labels = {k.removeprefix(PREFIX): v for k, v in raw.items() if k.startswith(PREFIX)}
    names = summary.get("Names") or []
    name = names[0].lstrip("/") if names else summary["Id"][:12]
    port = _int(labels.get(PORT))
    alive = summary.get("State") == "running"
    address = UNKNOWN_ADDRESS
    if alive and labels.get(NETWORK) == "host" and port:
        address = f"127.0.0.1:{port}"
    elif alive:
        for p in summary.get("Ports") or []:
            if p.get("PrivatePort") == port and p.get("IP") == "127.0.0.1" and p.get("PublicPort"):
                address = f"127.0.0.1:{p['PublicPort']}"
    created = summary.get("Created")
    return Instance(
        id=labels.get(INSTANCE, name),
        app=labels.get(APP, ""),
        env=labels.get(ENV, ""),
        service=labels.get(SERVICE, ""),
        fleet=labels.get(FLEET, ""),
        release=_int(labels.get(RELEASE)),
        address=address,
        ref=summary["Id"],
        alive=alive,
        started_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
        labels=labels,
        running_artifact=str(summary.get("ImageID") or ""),
    )


def mount_points(attrs: Mapping[str, Any]) -> set[str]:
    """Where the engine mounts volumes, tmpfs and its init: it creates those in the diff."""
    points = {m.get("Destination", "") for m in attrs.get("Mounts") or []}
    host = attrs.get("HostConfig") or {}
    points |= set(host.get("Tmpfs") or {})
    if host.get("Init"):
        points.add(INIT_PATH)
    return {p.rstrip("/") for p in points if p}


def file_changes(diff: list[Mapping[str, Any]] | None, mounts: set[str]) -> list[FileChange]:
    """The engine's diff as FileChanges, minus the mount points the engine itself made."""
    ancestors = {m.rsplit("/", i)[0] or "/" for m in mounts for i in range(1, m.count("/") + 1)}
    result = []
    for entry in diff or []:
        path = str(entry.get("Path", ""))
        kind = _DIFF_KINDS.get(int(entry.get("Kind", -1)))
        if kind is None or path in mounts:
            continue
        if kind != "deleted" and path in ancestors:
            continue  # a directory the engine made, or changed, to hold a mount point
        result.append(FileChange(path, kind))
    return sorted(result, key=lambda c: c.path)


# Environment kiln itself gives every container (environment() above), whatever the release.
def _own_env(name: str) -> bool:
    return name == "PORT" or name.startswith("KILN_VOLUME_")


def _env(pairs: list[str] | None) -> dict[str, str]:
    return dict(p.partition("=")[::2] for p in pairs or [])


def runtime_of(attrs: Mapping[str, Any], image: Mapping[str, Any], volume_prefix: str) -> Runtime:
    """What a container runs with (``inspect_container``), in release terms.

    ``image`` is the image's ``inspect_image``: a container inherits its env, and
    its entrypoint and cmd when the release gives no command. Declared volumes
    (``volume_prefix`` + name) read back as ``volume:NAME``.
    """
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    image_config = image.get("Config") or {}
    mounts: dict[str, str] = {}
    for m in attrs.get("Mounts") or []:
        name = str(m.get("Name") or "")
        if m.get("Type") == "volume" and name.startswith(volume_prefix):
            source = "volume:" + name.removeprefix(volume_prefix)
        else:
            source = f"{m.get('Type')}:{name or m.get('Source')}"
        mounts[str(m.get("Destination"))] = source + ("" if m.get("RW", True) else ":ro")
    if not host.get("ReadonlyRootfs"):
        mounts["/"] = "rootfs:writable"
    return Runtime(
        env={k: v for k, v in _env(config.get("Env")).items() if not _own_env(k)},
        base_env=_env(image_config.get("Env")),
        command=(*(config.get("Entrypoint") or ()), *(config.get("Cmd") or ())),
        default_command=(
            *(image_config.get("Entrypoint") or ()),
            *(image_config.get("Cmd") or ()),
        ),
        mounts=mounts,
    )

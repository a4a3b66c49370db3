"""DockerProvider: instances are sealed containers on one Docker engine.

Artifacts are images identified by ID (``images.py``); instances are
containers created from that ID with kiln's labels and sealed settings
(``containers.py``); declared volumes are named engine volumes
``kiln-<state>-<app>-<env>-<name>``. The engine is the only record: observe
asks it for every container carrying kiln's labels for this state dir, app and
env, alive or dead, so a hand-started container is seen and nothing is lost if
kiln dies right after a create.

This provider must never modify a container (no exec, no update, no restart),
never touch a container or volume of another state dir, and never let an
exception of the docker SDK escape (``client.engine_call``).
"""

from __future__ import annotations

import hashlib
import io
import math
import queue
import secrets as random
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from kiln.errors import NotFound, PermanentProviderError
from kiln.model import (
    ArtifactSource,
    FileChange,
    Fleet,
    Instance,
    Runtime,
    Secret,
    ServiceRelease,
)
from kiln.providers.base import (
    FILE_CHANGES,
    IMAGES,
    INTRUSIONS,
    LOGS,
    READ_ONLY_ARTIFACT,
    RUNTIME,
    VOLUMES,
    ProviderContext,
    check_launch,
)
from kiln.providers.docker import containers as c
from kiln.providers.docker import images
from kiln.providers.docker.client import connect, engine_address, engine_call, is_not_found

_CONFLICT = 409
# Threads creating and starting one fleet's containers. The SDK's connection pool
# holds 10 per engine, so more would queue on the pool, not on the engine.
_LAUNCH_WORKERS = 10


class DockerProvider:
    """Sealed containers on the engine at ``options["host"]``, ``DOCKER_HOST`` or the socket."""

    name = "docker"
    capabilities: frozenset[str] = frozenset(
        {IMAGES, FILE_CHANGES, INTRUSIONS, RUNTIME, VOLUMES, LOGS, READ_ONLY_ARTIFACT}
    )

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.address = engine_address(ctx.options)
        root = ctx.state_dir.resolve()
        # Short hash of the state dir: two state dirs never see each other's containers.
        self.state_id = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        # Connects and pings now: an unreachable engine fails before anything starts.
        self._client: Any = connect(self.address)
        self._images: dict[str, dict[str, Any]] = {}

    @property
    def _api(self) -> Any:
        return self._client.api

    # -- artifacts -----------------------------------------------------------

    def bake(self, service: str, source: ArtifactSource) -> str:
        return images.bake(self._client, self.ctx.app, service, source)

    def has_artifact(self, digest: str) -> bool:
        return images.has_image(self._client, digest)

    # -- launch --------------------------------------------------------------

    def launch(
        self,
        fleet: Fleet,
        spec: ServiceRelease,
        secrets: Mapping[str, Secret],
        count: int,
    ) -> list[Instance]:
        check_launch(self.ctx.app, fleet, count)
        c.checked_name(fleet.id, "fleet id")
        if count == 0:
            return []
        if not self.has_artifact(spec.artifact):
            raise PermanentProviderError(
                f"artifact {spec.artifact} is not an image on the engine at {self.address}"
            )
        c.check_network(spec)  # before anything is created
        volumes = self._ensure_volumes(fleet.env, spec.volumes)
        # In parallel, as `docker run` of a fleet would be: creating and starting a
        # container is mostly waiting on the engine. Host networking stays serial:
        # each instance picks a free host port, and two picks must not collide.
        workers = 1 if spec.network == "host" else min(count, _LAUNCH_WORKERS)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiln-launch") as pool:
            futures = [
                pool.submit(self._launch_one, fleet, spec, secrets, volumes) for _ in range(count)
            ]
            wait(futures)
        launched = [f.result() for f in futures if f.exception() is None]
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            # All or nothing: a failed launch leaves no half-fleet behind.
            for instance in launched:
                self.destroy(instance, grace=1.0)
            raise failed
        return launched

    def _ensure_volumes(self, env: str, declared: Mapping[str, str]) -> dict[str, str]:
        """Engine volume name -> mount path; created (labelled) if missing, kept if present."""
        result: dict[str, str] = {}
        with engine_call(f"volumes of {env}"):
            for name, path in declared.items():
                vname = c.volume_name(self.state_id, self.ctx.app, env, name)
                labels = {c.label(k): v for k, v in self._scope(env).items()}
                labels[c.label(c.VOLUME)] = name
                self._api.create_volume(vname, labels=labels)  # returns the existing one
                result[vname] = path
        return result

    def _scope(self, env: str) -> dict[str, str]:
        return {c.STATE: self.state_id, c.APP: self.ctx.app, c.ENV: env}

    def _launch_one(
        self,
        fleet: Fleet,
        spec: ServiceRelease,
        secrets: Mapping[str, Secret],
        volumes: Mapping[str, str],
    ) -> Instance:
        host_network = spec.network == "host"
        port = c.free_port(self._host_ports()) if host_network else spec.port
        env = c.environment(spec, secrets, port)
        with engine_call(f"launch {fleet.id}"):
            # Inside engine_call: the SDK validates limits (memory: "256x") itself.
            config = c.host_config(self._api, spec, volumes)
            created = None
            while created is None:
                iid = f"{fleet.id}.{random.token_hex(3)}"
                try:
                    created = self._api.create_container(
                        image=spec.artifact,  # the ID, never a tag
                        # `command` is the whole argv, as for every provider (and as
                        # Kubernetes' command): it replaces ENTRYPOINT and CMD both.
                        # Empty: the image's own ENTRYPOINT/CMD.
                        entrypoint=list(spec.command[:1]) or None,
                        command=list(spec.command[1:]) if spec.command else None,
                        name=iid,
                        labels=c.instance_labels(
                            state=self.state_id, fleet=fleet, spec=spec, iid=iid, port=port
                        ),
                        environment=env,
                        ports=None if host_network else [spec.port],
                        host_config=config,
                        detach=True,
                    )
                except Exception as exc:
                    if getattr(exc, "status_code", None) != _CONFLICT:
                        raise
                    # The random suffix collided with an existing name: draw again.
            ref: str = created["Id"]
            try:
                self._api.start(ref)
                # Read back as observe will see it: the engine-chosen host port included.
                [summary] = self._api.containers(all=True, filters={"id": ref})
            except Exception:
                self._remove(ref)
                raise
        return c.from_summary(summary)

    def _host_ports(self) -> set[int]:
        # Ports given to host-network containers of this state dir, running or
        # not (a restarting one will want its port back).
        with engine_call("list containers"):
            found = self._api.containers(
                all=True, filters={"label": c.label_filter(state=self.state_id, network="host")}
            )
        ports = {c.from_summary(s).labels.get(c.PORT, "") for s in found}
        return {int(p) for p in ports if p.isdigit()}

    # -- observe / destroy ------------------------------------------------------

    def _summaries(self, env: str, **more: str) -> list[dict[str, Any]]:
        filters = {"label": c.label_filter(**self._scope(env), **more)}
        with engine_call(f"list containers of {env}"):
            found: list[dict[str, Any]] = self._api.containers(all=True, filters=filters)
        return found

    def observe(self, env: str) -> list[Instance]:
        instances = [c.from_summary(s) for s in self._summaries(env)]
        return sorted(instances, key=_launch_order)

    def destroy(self, instance: Instance, grace: float = 10.0) -> None:
        ref = instance.ref or instance.id
        with engine_call(f"destroy {instance.id}"):
            attrs = self._inspect(ref)
            if attrs is None:
                return  # already gone: destroy is idempotent
            labels = attrs["Config"].get("Labels") or {}
            if labels.get(c.label(c.STATE)) != self.state_id:
                raise PermanentProviderError(
                    f"container {ref[:12]} is not one of this state dir's instances"
                )
            try:
                # The engine's stop takes whole seconds; round up so grace is never cut short.
                self._api.stop(ref, timeout=max(0, math.ceil(grace)))
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            self._remove(ref)

    def _remove(self, ref: str) -> None:
        try:
            self._api.remove_container(ref, force=True)
        except Exception as exc:
            # Gone already, or a concurrent destroy is removing it: both are done.
            if not (is_not_found(exc) or getattr(exc, "status_code", None) == _CONFLICT):
                raise

    # -- drift, logs, volumes ------------------------------------------------

    def changes(self, instance: Instance) -> list[FileChange]:
        ref = instance.ref or instance.id
        with engine_call(f"changes of {instance.id}"):
            try:
                attrs = self._api.inspect_container(ref)
                diff = self._api.diff(ref)
            except Exception as exc:
                if is_not_found(exc):
                    raise NotFound(f"instance {instance.id} no longer exists") from exc
                raise
        return c.file_changes(diff, c.mount_points(attrs))

    def writable_files(self, instance: Instance, limit: int, most: int) -> list[tuple[str, bytes]]:
        return []  # /tmp is a tmpfs: only an exec could read it, and kiln never execs

    def runtime(self, instance: Instance) -> Runtime | None:
        ref = instance.ref or instance.id
        with engine_call(f"inspect {instance.id}"):
            attrs = self._inspect(ref)
            if attrs is None:
                return None
            image = self._image_config(str(attrs.get("Image") or ""))
        prefix = c.volume_name(self.state_id, self.ctx.app, instance.env, "")
        return c.runtime_of(attrs, image, prefix)

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        """The container's attributes, or None if it is gone (call inside engine_call)."""
        try:
            attrs: dict[str, Any] = self._api.inspect_container(ref)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return attrs

    def _image_config(self, image_id: str) -> dict[str, Any]:
        # Images are immutable by ID: one inspect each for the provider's life.
        if image_id not in self._images:
            self._images[image_id] = self._api.inspect_image(image_id)
        return self._images[image_id]

    def read_file(self, instance: Instance, path: str, limit: int) -> bytes | None:
        ref = instance.ref or instance.id
        with engine_call(f"read {path} in {instance.id}"):
            try:
                stream, _ = self._api.get_archive(ref, path)
                data = b"".join(stream)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read(limit) if extracted is not None else None

    def intrusions(self, instance: Instance) -> list[str]:
        ref = instance.ref or instance.id
        since = int(instance.started_at.timestamp()) if instance.started_at else 0
        with engine_call(f"exec events of {instance.id}"):
            events = self._api.events(
                since=since,
                until=int(time.time()) + 1,
                filters={"container": ref, "event": "exec_start"},
                decode=True,
            )
            # "exec_start: sh -c echo hi > /tmp/x" -> "sh -c echo hi > /tmp/x"
            return [str(e.get("Action", "")).partition(": ")[2] for e in events]

    def logs(
        self, env: str, service: str, *, follow: bool = False, tail: int = 100
    ) -> Iterator[str]:
        """Lines ``"<instance id> | <line>"``, oldest instances first."""
        instances = [c.from_summary(s) for s in self._summaries(env, service=service)]
        instances.sort(key=_launch_order)
        if not follow:
            for instance in instances:
                with engine_call(f"logs of {instance.id}"):
                    data: bytes = self._api.logs(instance.ref, tail=max(tail, 0))
                for line in data.decode(errors="replace").splitlines():
                    yield f"{instance.id} | {line}"
            return
        yield from self._follow(env, service, instances, tail)

    def _follow(
        self, env: str, service: str, instances: list[Instance], tail: int
    ) -> Iterator[str]:
        # One reader thread per container feeds a queue; new containers of the
        # service are picked up by polling. Threads end with their container.
        lines: queue.Queue[str | BaseException] = queue.Queue()
        followed: set[str] = set()

        def read(instance: Instance, tail: int | str) -> None:
            try:
                with engine_call(f"logs of {instance.id}"):
                    try:
                        stream = self._api.logs(instance.ref, stream=True, follow=True, tail=tail)
                    except Exception as exc:
                        if is_not_found(exc):
                            return  # removed before we got to it: nothing to follow
                        raise
                    partial = b""
                    for chunk in stream:
                        *complete, partial = (partial + chunk).split(b"\n")
                        for raw in complete:
                            lines.put(f"{instance.id} | {raw.decode(errors='replace')}")
            except BaseException as exc:
                lines.put(exc)  # re-raised in the caller's thread

        def start(instance: Instance, tail: int | str) -> None:
            followed.add(instance.ref)
            threading.Thread(target=read, args=(instance, tail), daemon=True).start()

        for instance in instances:
            start(instance, max(tail, 0))
        next_poll = time.monotonic() + 1.0
        while True:
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                item = None
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1.0
                for s in self._summaries(env, service=service):
                    if s["Id"] not in followed:
                        start(c.from_summary(s), "all")  # all of a new instance is new

    def remove_volumes(self, env: str) -> None:
        filters = {"label": c.label_filter(**self._scope(env))}
        with engine_call(f"remove volumes of {env}"):
            found = self._api.volumes(filters=filters).get("Volumes") or []
            for volume in found:
                try:
                    self._api.remove_volume(volume["Name"])
                except Exception as exc:
                    if is_not_found(exc):
                        continue
                    if getattr(exc, "status_code", None) == _CONFLICT:
                        raise PermanentProviderError(
                            f"volume {volume['Name']} is still in use by a container"
                        ) from exc
                    raise


def _launch_order(instance: Instance) -> tuple[float, str]:
    started = instance.started_at.timestamp() if instance.started_at else 0.0
    return (started, instance.id)

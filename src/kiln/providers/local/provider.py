"""LocalProvider: instances are processes on this machine, artifacts are directories.

The embedded default: no daemon, all state in files under the state directory::

    artifacts/<hex>/            read-only snapshot of a build dir (and <hex>.json manifest)
    instances/<env>/<id>.json   one record per instance (pid + start time once spawned)
    logs/<env>/<service>/<id>.log
    scratch/<id>/               the instance's HOME and TMPDIR, removed on destroy
    volumes/<env>/<name>/       declared volumes, kept across replacements

Instances are found twice over: through their records and through kiln's labels
in ``/proc/*/environ``, so one that kiln lost track of (killed between spawn and
record) is still adopted. This provider must never modify a running instance,
never signal a pid whose start time does not match, and never hand kiln's own
environment to an instance.
"""

from __future__ import annotations

import hashlib
import os
import secrets as random
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

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
    LOGS,
    READ_ONLY_ARTIFACT,
    RUNTIME,
    VOLUMES,
    WRITABLE_AREAS,
    ProviderContext,
    check_launch,
)
from kiln.providers.local import artifacts, discovery, logs, process, procfs, records
from kiln.providers.local.environment import app_env, build_env, free_port
from kiln.providers.local.fsutil import force_rmtree, is_safe_component, safe_component, translate
from kiln.providers.local.sandbox import Sandbox, detect


class LocalProvider:
    """Processes from read-only artifact directories (see the module docstring).

    ``ctx.options["sandbox"]``: ``"auto"`` (default: the mount namespace when it
    works here), ``"off"`` (file modes only) or ``"required"`` (fail if unavailable).
    """

    name = "local"

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.root = ctx.state_dir.resolve()
        # Short hash of the state dir: two state dirs never see each other's processes.
        self.state_id = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self.sandbox = self._sandbox(str(ctx.options.get("sandbox", "auto")))
        caps = {FILE_CHANGES, RUNTIME, WRITABLE_AREAS, VOLUMES, LOGS}
        if self.sandbox is not None:
            caps.add(READ_ONLY_ARTIFACT)
        self.capabilities: frozenset[str] = frozenset(caps)
        # Popen objects of instances this object spawned, so destroy can reap them.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @staticmethod
    def _sandbox(mode: str) -> Sandbox | None:
        if mode == "off":
            return None
        if mode not in ("auto", "required"):
            raise PermanentProviderError(
                f"local provider: sandbox must be auto|off|required, not {mode!r}"
            )
        sandbox = detect()
        if sandbox is None and mode == "required":
            raise PermanentProviderError(
                "local provider: read-only mount namespace unavailable (needs root and unshare)"
            )
        return sandbox

    # -- paths ---------------------------------------------------------------

    @property
    def _artifacts(self) -> Path:
        return self.root / "artifacts"

    def _records_dir(self, env: str) -> Path:
        return self.root / "instances" / safe_component(env, "environment")

    def _artifact_dir(self, digest: str) -> Path:
        return self._artifacts / artifacts.digest_hex(digest)

    # -- artifacts -----------------------------------------------------------

    def bake(self, service: str, source: ArtifactSource) -> str:
        if source.build is None:
            raise PermanentProviderError(
                f"service {service}: the local provider runs a build directory, not an "
                f"image ({source.image}); use provider: docker for images"
            )
        return artifacts.snapshot(source.build, self._artifacts, exclude=self.root)

    def has_artifact(self, digest: str) -> bool:
        return artifacts.has_artifact(self._artifacts, digest)

    # -- launch --------------------------------------------------------------

    def launch(
        self,
        fleet: Fleet,
        spec: ServiceRelease,
        secrets: Mapping[str, Secret],
        count: int,
    ) -> list[Instance]:
        check_launch(self.ctx.app, fleet, count)
        if not spec.command:
            raise PermanentProviderError(f"service {spec.service!r} has no command")
        safe_component(fleet.id, "fleet id")
        safe_component(spec.service, "service")
        for volume in spec.volumes:
            safe_component(volume, "volume")
        if not self.has_artifact(spec.artifact):
            raise PermanentProviderError(
                f"artifact {spec.artifact} is not baked in {self._artifacts}, or its files "
                "changed since it was baked; bake it again"
            )
        self._check_command(spec.command[0], self._artifact_dir(spec.artifact), spec.env)
        launched: list[Instance] = []
        try:
            for _ in range(count):
                launched.append(self._launch_one(fleet, spec, secrets))
        except Exception:
            # All or nothing: a failed launch leaves no half-fleet behind.
            for instance in launched:
                self.destroy(instance, grace=1.0)
            raise
        return launched

    @staticmethod
    def _check_command(program: str, art_dir: Path, spec_env: Mapping[str, str]) -> None:
        # In the sandbox a missing program only shows as an instance that dies
        # at once (sh: not found); say so now, before anything is started.
        if "/" in program:
            found = (art_dir / program).is_file()  # absolute paths ignore art_dir
        else:
            path = spec_env.get("PATH", os.environ.get("PATH", os.defpath))
            found = shutil.which(program, path=path) is not None
        if not found:
            raise PermanentProviderError(f"command {program!r} not found (cwd {art_dir})")

    def _taken_ports(self) -> set[int]:
        return {r.port for d in (self.root / "instances").glob("*") for r in records.read_all(d)}

    def _launch_one(
        self, fleet: Fleet, spec: ServiceRelease, secrets: Mapping[str, Secret]
    ) -> Instance:
        rec_dir = self._records_dir(fleet.env)
        iid = f"{fleet.id}.{random.token_hex(3)}"
        while (rec_dir / f"{iid}.json").exists():
            iid = f"{fleet.id}.{random.token_hex(3)}"
        port = free_port(self._taken_ports())
        now = datetime.now(UTC).isoformat()
        record = records.InstanceRecord(
            id=iid,
            app=fleet.app,
            env=fleet.env,
            service=spec.service,
            fleet=fleet.id,
            release=fleet.release,
            artifact=spec.artifact,
            port=port,
            address=f"127.0.0.1:{port}",
            created_at=now,
            config=spec.config_digest(),
        )
        art_dir = self._artifact_dir(spec.artifact)
        scratch = self.root / "scratch" / iid
        log = self.root / "logs" / fleet.env / spec.service / f"{iid}.log"
        volumes = {v: self.root / "volumes" / fleet.env / v for v in spec.volumes}
        try:
            # Recorded before the process exists, so it is never untracked.
            records.write(rec_dir / f"{iid}.json", record)
            scratch.mkdir(mode=0o700, parents=True)
            log.parent.mkdir(parents=True, exist_ok=True)
            for path in volumes.values():
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise translate(exc, f"cannot prepare instance {iid}") from exc
        env = build_env(
            spec_env=spec.env,
            secrets=secrets,
            port=port,
            scratch=scratch,
            volumes=volumes,
            labels=self._labels(record),
        )
        argv = list(spec.command)
        if self.sandbox is not None:
            argv = self.sandbox.wrap(argv, art_dir)
        try:
            child = process.spawn(argv, cwd=art_dir, env=env, log=log)
        except Exception:
            self._forget(fleet.env, iid)
            raise
        self._children[child.pid] = child
        st = procfs.read_stat(child.pid)  # a zombie still has its stat until reaped
        record = replace(
            record,
            pid=child.pid,
            start_time=st.start_time if st is not None else None,
            started_at=datetime.now(UTC).isoformat(),
        )
        try:
            records.write(rec_dir / f"{iid}.json", record)
        except OSError as exc:
            raise translate(exc, f"cannot record instance {iid}") from exc
        return self._from_record(record, alive=st is not None and st.running)

    def _labels(self, r: records.InstanceRecord) -> dict[str, str]:
        return {
            "state_id": self.state_id,
            "app": r.app,
            "env": r.env,
            "service": r.service,
            "release": str(r.release),
            "fleet": r.fleet,
            "instance": r.id,
            "artifact": r.artifact,
            **({"config": r.config} if r.config else {}),
        }

    def _from_record(
        self, r: records.InstanceRecord, *, alive: bool, ref: str | None = None
    ) -> Instance:
        return Instance(
            id=r.id,
            app=r.app,
            env=r.env,
            service=r.service,
            fleet=r.fleet,
            release=r.release,
            address=r.address,
            ref=r.ref if ref is None else ref,
            alive=alive,
            started_at=datetime.fromisoformat(r.started_at) if r.started_at else None,
            labels=self._labels(r),
        )

    # -- observe -------------------------------------------------------------

    def observe(self, env: str) -> list[Instance]:
        procs = discovery.scan(self.state_id, self.ctx.app, env)
        result: list[Instance] = []
        for r in records.read_all(self._records_dir(env)):
            if r.app != self.ctx.app:
                continue
            seen = procs.pop(r.id, None)
            # Identity is pid + start time: a reused pid makes this instance dead.
            if r.start_time is not None and r.pid and procfs.is_running(r.pid, r.start_time):
                result.append(self._from_record(r, alive=True))
            elif seen is not None:  # spawned, but kiln died before recording the pid
                result.append(self._from_record(r, alive=True, ref=seen.ref))
            else:
                result.append(self._from_record(r, alive=False))
        for key, found in procs.items():
            result.append(discovery.adopt(key, found, app=self.ctx.app, state_id=self.state_id))
        return sorted(result, key=_launch_order)

    # -- destroy -------------------------------------------------------------

    def destroy(self, instance: Instance, grace: float = 10.0) -> None:
        pid_s, _, start_s = instance.ref.partition(":")
        if pid_s.isdigit() and start_s.isdigit():
            process.terminate(int(pid_s), int(start_s), grace, self._children)
        self._forget(instance.env, instance.id)

    def _forget(self, env: str, iid: str) -> None:
        # Ids of adopted processes come from their environment: never let one
        # name a path outside the state dir.
        if not (is_safe_component(env) and is_safe_component(iid)):
            return
        try:
            force_rmtree(self.root / "scratch" / iid)
            (self.root / "instances" / env / f"{iid}.json").unlink(missing_ok=True)
        except OSError as exc:
            raise translate(exc, f"cannot clean up instance {iid}") from exc

    # -- drift, logs, volumes ------------------------------------------------

    def changes(self, instance: Instance) -> list[FileChange]:
        digest = instance.labels.get("artifact", "")
        if not digest and is_safe_component(instance.id):
            r = records.read(self._records_dir(instance.env) / f"{instance.id}.json")
            digest = r.artifact if r is not None else ""
        if not digest:
            raise NotFound(f"instance {instance.id}: its artifact is unknown")
        manifest = artifacts.load_manifest(self._artifacts, digest)
        art_dir = self._artifact_dir(digest)
        try:
            current = artifacts.scan(art_dir) if art_dir.is_dir() else {}
        except OSError as exc:
            raise translate(exc, f"cannot scan artifact {digest}") from exc
        return artifacts.diff(manifest, current)

    def read_file(self, instance: Instance, path: str, limit: int) -> bytes | None:
        digest = instance.labels.get("artifact", "")
        try:
            root = self._artifact_dir(digest).resolve()
            target = (root / path).resolve()
        except (NotFound, OSError):
            return None
        if root not in target.parents or not target.is_file():
            return None  # never read outside the artifact (a path like ../../etc/shadow)
        try:
            with target.open("rb") as f:
                return f.read(limit)
        except OSError:
            return None

    def writable_files(self, instance: Instance, limit: int, most: int) -> list[tuple[str, bytes]]:
        if not is_safe_component(instance.id):
            return []
        scratch = self.root / "scratch" / instance.id
        found: list[tuple[str, bytes]] = []
        for top, dirs, files in os.walk(scratch):  # never follows symlinks
            dirs.sort()
            for name in sorted(files):
                path = Path(top) / name
                if len(found) >= most:
                    return found
                try:
                    if not path.is_file() or path.is_symlink():
                        continue
                    with path.open("rb") as f:
                        data = f.read(limit)
                except OSError:
                    continue  # gone meanwhile, or not ours to read
                found.append((f"scratch/{path.relative_to(scratch)}", data))
        return found

    def runtime(self, instance: Instance) -> Runtime | None:
        # The environment a process was exec'd with is in /proc for its whole life, but
        # as its last exec saw it: a wrapper (a pyenv shim, a script's export) may have
        # added to it, so only the release's own variables count. Its argv is not
        # compared: a server may rewrite its own (setproctitle).
        pid, _, start = instance.ref.partition(":")
        if not (pid.isdigit() and start.isdigit()) or not procfs.is_running(int(pid), int(start)):
            return None
        environ = procfs.read_environ(int(pid))
        return None if environ is None else Runtime(env=app_env(environ), exact_env=False)

    def intrusions(self, instance: Instance) -> list[str]:
        return []  # a process has no exec channel; its changes show in changes()

    def logs(
        self, env: str, service: str, *, follow: bool = False, tail: int = 100
    ) -> Iterator[str]:
        directory = self.root / "logs" / safe_component(env, "environment")
        directory = directory / safe_component(service, "service")
        try:
            yield from logs.stream(directory, tail=tail, follow=follow)
        except OSError as exc:
            raise translate(exc, f"cannot read logs of {env}/{service}") from exc

    def remove_volumes(self, env: str) -> None:
        path = self.root / "volumes" / safe_component(env, "environment")
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise translate(exc, f"cannot remove volumes of {env}") from exc


_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def _launch_order(instance: Instance) -> tuple[datetime, str]:
    return (instance.started_at or _EPOCH, instance.id)

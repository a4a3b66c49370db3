"""The provider interface: launch, destroy, observe, changes — and no update.

A provider never modifies a running instance; there is deliberately no
operation for it. Core code asks ``capabilities``, never which provider it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from kiln.errors import PermanentProviderError
from kiln.model import (
    ArtifactSource,
    FileChange,
    Fleet,
    Instance,
    Runtime,
    Secret,
    ServiceRelease,
)

# Capability names a provider may declare.
READ_ONLY_ARTIFACT = "read-only-artifact"  # instances cannot write to their artifact
FILE_CHANGES = "file-changes"  # changes() reports in-instance filesystem drift
VOLUMES = "volumes"  # declared volumes persist across replacements
LOGS = "logs"
IMAGES = "images"  # runs prebuilt images, whose own command is the default
INTRUSIONS = "intrusions"  # intrusions(): commands run inside an instance (docker exec)
RUNTIME = "runtime"  # runtime(): the env, command and mounts an instance really runs with
WRITABLE_AREAS = "writable-areas"  # writable_files(): read from outside the instance


@dataclass(frozen=True)
class ProviderContext:
    """What every provider gets: where kiln keeps state, and which app it serves."""

    state_dir: Path
    app: str
    # The environment's provider options from the spec, e.g. {"host": "unix:///..."}
    # for docker; and "environ": the kiln command's environment (DOCKER_HOST, ...).
    options: Mapping[str, object]


def check_launch(app: str, fleet: Fleet, count: int) -> None:
    """The argument checks every provider's ``launch`` starts with."""
    if fleet.app != app:
        raise PermanentProviderError(f"fleet {fleet.id} is not of app {app!r}")
    if count < 0:
        raise PermanentProviderError(f"cannot launch {count} instances")


@runtime_checkable
class Provider(Protocol):
    name: str
    capabilities: frozenset[str]

    def bake(self, service: str, source: ArtifactSource) -> str:
        """Turn ``source`` into an immutable artifact; return its content digest.

        The same content gives the same digest whatever the mtimes or file
        order; baking existing content again is cheap and returns the same
        digest. A source the provider cannot run (a prebuilt image for a
        process provider) is a ``PermanentProviderError`` naming the service.
        """
        ...

    def has_artifact(self, digest: str) -> bool: ...

    def launch(
        self,
        fleet: Fleet,
        spec: ServiceRelease,
        secrets: Mapping[str, Secret],
        count: int,
    ) -> list[Instance]:
        """Start ``count`` new instances of ``fleet`` from ``spec``'s artifact.

        Returns once the instances exist (not once they are healthy). Each
        instance carries kiln's labels (app, env, service, release, fleet,
        instance) so ``observe`` finds it even if the caller dies right after.
        """
        ...

    def destroy(self, instance: Instance, grace: float = 10.0) -> None:
        """Stop and remove an instance (SIGTERM, then SIGKILL after ``grace``).

        Idempotent: destroying an instance that is already gone is not an error.
        """
        ...

    def observe(self, env: str) -> list[Instance]:
        """Every instance carrying kiln's labels for this app and ``env``, alive or dead."""
        ...

    def changes(self, instance: Instance) -> list[FileChange]:
        """Files added, changed or deleted inside the instance against its artifact."""
        ...

    def read_file(self, instance: Instance, path: str, limit: int) -> bytes | None:
        """Up to ``limit`` bytes of ``path`` (as ``changes`` names it) inside the running
        instance, or None if it is not a regular file there. Reads, never writes."""
        ...

    def intrusions(self, instance: Instance) -> list[str]:
        """Commands run inside the instance from outside since it started (``docker
        exec``), oldest first; [] from a provider without the ``intrusions`` capability."""
        ...

    def writable_files(self, instance: Instance, limit: int, most: int) -> list[tuple[str, bytes]]:
        """Up to ``most`` files in the instance's writable areas (local: its scratch dir,
        named ``scratch/PATH``), each read up to ``limit`` bytes; [] from a provider
        without the ``writable-areas`` capability (a container's tmpfs is not
        readable from outside it)."""
        ...

    def runtime(self, instance: Instance) -> Runtime | None:
        """What the instance really runs with, as the engine or /proc says now (None if it
        is gone); only from a provider with the ``runtime`` capability."""
        ...

    def logs(
        self, env: str, service: str, *, follow: bool = False, tail: int = 100
    ) -> Iterator[str]:
        """Log lines of the service's instances (newest instances last)."""
        ...

    def remove_volumes(self, env: str) -> None:
        """Delete the persistent volumes of ``env`` (only on ``kiln down --volumes``)."""
        ...

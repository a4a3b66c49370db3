"""Releases: immutable, numbered per environment, pinned by digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kiln.model.analysis import Thresholds
from kiln.model.digest import canonical_digest


@dataclass(frozen=True)
class ArtifactSource:
    """What a service's artifact is baked from: a build directory or a prebuilt image."""

    build: Path | None = None  # local: the directory itself; docker: the build context
    dockerfile: str | None = None  # relative to ``build``
    image: str | None = None  # a prebuilt image reference (name:tag or name@sha256:...)


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/healthz"
    interval: float = 1.0
    timeout: float = 1.0
    healthy_after: int = 2
    start_timeout: float = 30.0


@dataclass(frozen=True)
class CanaryStep:
    """Set the canary's weight, judge it (if ``analysis``), then hold (if paused)."""

    weight: int  # percent of the route's traffic on the canary, 0..100
    pause: float | None = None  # seconds to hold after the analysis passed
    manual: bool = False  # hold until `kiln advance`
    analysis: Thresholds | None = None  # the step's own merged over the strategy's default


@dataclass(frozen=True)
class StrategyConfig:
    type: str = "blue-green"  # blue-green | canary | rolling
    retain_previous: float = 600.0
    drain_timeout: float = 30.0
    steps: tuple[CanaryStep, ...] = ()  # canary only
    progress_deadline: float = 600.0  # seconds from start to the last forward step's end
    header: str = "X-Kiln-Fleet"  # a request with `header: canary` reaches the canary
    # rolling only: instances above / below the replica count during a batch
    max_surge: int = 1
    max_unavailable: int = 0


@dataclass(frozen=True)
class ServiceRelease:
    """The fully resolved, pinned description of one service in one release.

    Everything an instance is launched from, except secret values: only their
    digests are kept, so a release can be stored and shown without leaking.
    """

    service: str
    artifact: str
    command: tuple[str, ...]
    port: int
    replicas: int
    env: dict[str, str]
    secrets: dict[str, str]
    health: HealthCheck
    volumes: dict[str, str]
    strategy: StrategyConfig
    route: str | None = None
    # Container settings (ignored by providers that run processes).
    image: str | None = None  # the human-readable reference the artifact was resolved from
    cap_add: tuple[str, ...] = ()
    cpus: float | None = None
    memory: str | None = None  # e.g. "256m"
    network: str = "published"  # "published" on 127.0.0.1, or "host"

    def config_digest(self) -> str:
        """Digest of everything but the artifact: env, secret versions, command, ..."""
        from kiln.model.codec import to_json

        data = to_json(self)
        data.pop("artifact")
        data.pop("image")  # a label for humans; the artifact digest is what runs
        return canonical_digest(data)


@dataclass(frozen=True)
class Promotion:
    """The evidence a release was promoted on, from another environment's release."""

    env: str  # the source environment
    release: int  # the source release: its artifacts are this release's, unchanged
    deployment: int | None  # the deployment that made it serve there
    result: str  # that deployment's status
    serving_since: datetime | None  # when it started serving there
    soak_seconds: float  # how long it had served when promoted
    analysis: tuple[str, ...] = ()  # the canary analysis verdicts of that deployment


@dataclass(frozen=True)
class Release:
    app: str
    env: str
    number: int
    services: dict[str, ServiceRelease]
    config_digest: str
    spec_digest: str
    commit: str | None
    dirty: bool
    author: str
    created_at: datetime
    reason: str = "deploy"
    provider: str = "local"
    promotion: Promotion | None = None

    @property
    def artifacts(self) -> dict[str, str]:
        return {name: s.artifact for name, s in self.services.items()}


def release_config_digest(services: dict[str, ServiceRelease]) -> str:
    return canonical_digest({name: s.config_digest() for name, s in sorted(services.items())})

"""The shape of ``kiln.yaml`` as pydantic models; unknown keys are errors."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kiln.errors import NotFound, SpecError
from kiln.model import canonical_digest
from kiln.model.analysis import Thresholds
from kiln.model.release import CanaryStep, StrategyConfig
from kiln.spec.durations import PATTERN, parse_duration

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": PATTERN}],
            "description": "seconds, or a duration like 500ms, 1s, 10m, 1h",
        }
    ),
]

NAME = r"^[a-z][a-z0-9-]{0,39}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME)]


def _stringify(value: object) -> object:
    # YAML turns `DEBUG: 1` into an int; an environment variable is a string either way.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


EnvValue = Annotated[str, BeforeValidator(_stringify)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Set by kiln for every instance; a spec that sets them would be silently overridden.
RESERVED_ENV = ("PORT", "HOME", "TMPDIR", "PATH")


def _check_env_names(value: dict[str, str] | None) -> dict[str, str] | None:
    for key in value or {}:
        if not re.match(ENV_NAME, key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
        if key in RESERVED_ENV or key.startswith("KILN_"):
            raise ValueError(f"{key} is set by kiln for every instance; choose another name")
    return value


class HealthSpec(_Strict):
    path: str = Field("/healthz", pattern=r"^/")
    interval: Annotated[Duration, Field(gt=0)] = 1.0
    timeout: Annotated[Duration, Field(gt=0)] = 1.0
    healthy_after: int = Field(2, ge=1, le=100)
    start_timeout: Duration = 30.0


Ratio = Annotated[float, Field(ge=0, le=1)]


class AnalysisSpec(_Strict):
    """Thresholds a canary step is judged by; unset ones are not checked."""

    window: Annotated[Duration, Field(gt=0)] | None = None
    min_requests: int | None = Field(None, ge=1)
    max_error_rate: Ratio | None = Field(
        None, description="5xx / requests (the router's 502 for a refused connect counts)"
    )
    max_p99_ms: float | None = Field(None, gt=0)
    max_error_rate_vs_stable: Ratio | None = Field(
        None, description="canary error rate minus the stable fleet's, same window"
    )
    max_p99_ratio_vs_stable: float | None = Field(
        None, gt=0, description="canary p99 / stable p99, same window"
    )


class CanaryStepSpec(_Strict):
    weight: int = Field(ge=0, le=100, description="percent of traffic on the canary")
    pause: Duration | Literal["manual"] | None = Field(
        None, description="hold after the analysis: a duration, or manual (`kiln advance`)"
    )
    analysis: AnalysisSpec | None = None


# Surge/unavailable: an instance count, or a percentage of the replicas ("25%").
Amount = int | Annotated[str, Field(pattern=r"^\d{1,3}%$")]


class StrategySpec(_Strict):
    type: Literal["blue-green", "canary", "rolling"] = "blue-green"
    retain_previous: Duration = 600.0
    drain_timeout: Duration = 30.0
    steps: list[CanaryStepSpec] | None = Field(None, min_length=1, description="canary only")
    analysis: AnalysisSpec | None = Field(
        None, description="canary: the default merged into every step's analysis"
    )
    progress_deadline: Annotated[Duration, Field(gt=0)] = Field(
        600.0, description="a deployment not done by then fails and rolls back"
    )
    header: str = Field(
        "X-Kiln-Fleet",
        pattern=r"^[A-Za-z0-9-]+$",
        description="canary: requests with `<header>: canary` reach the canary at any weight",
    )
    max_surge: Amount | None = Field(None, description="rolling: extra instances per batch")
    max_unavailable: Amount | None = Field(
        None, description="rolling: instances below the replica count per batch"
    )

    @model_validator(mode="after")
    def _fits_type(self) -> StrategySpec:
        if self.type != "canary" and (self.steps is not None or self.analysis is not None):
            raise ValueError("steps and analysis are for type: canary")
        if self.type != "rolling" and (
            self.max_surge is not None or self.max_unavailable is not None
        ):
            raise ValueError("max_surge and max_unavailable are for type: rolling")
        if self.type == "rolling":
            surge, unavailable = self.max_surge, self.max_unavailable
            for amount in (surge, unavailable):
                if isinstance(amount, int) and amount < 0:
                    raise ValueError("max_surge and max_unavailable cannot be negative")
                if isinstance(amount, str) and int(amount[:-1]) > 100:
                    raise ValueError(f"{amount} is more than 100%")
            if _is_zero(surge if surge is not None else 1) and _is_zero(unavailable or 0):
                raise ValueError(
                    "max_surge and max_unavailable cannot both be 0: nothing could move"
                )
        if self.type == "canary":
            if not self.steps:
                raise ValueError("type: canary needs steps (a weight each)")
            weights = [s.weight for s in self.steps]
            if any(b <= a for a, b in itertools.pairwise(weights)):
                raise ValueError(f"step weights must increase: {weights}")
            for n, step in enumerate(self.steps, 1):
                longest = max(
                    step.pause if isinstance(step.pause, float) else 0.0,
                    _merged(self.analysis, step.analysis).window
                    if step_thresholds(self, step)
                    else 0.0,
                )
                if longest >= self.progress_deadline:
                    raise ValueError(
                        f"step {n} waits {longest:g}s, not less than progress_deadline "
                        f"({self.progress_deadline:g}s): it could never complete"
                    )
                if step.weight == 100 and _merged(self.analysis, step.analysis).compares_stable:
                    raise ValueError(
                        "a step at weight 100 leaves the stable fleet no traffic "
                        "to compare with (max_*_vs_stable)"
                    )
        return self

    def config(self, replicas: int) -> StrategyConfig:
        """The release's pinned form: merged thresholds, amounts as instance counts."""
        surge, unavailable = self.max_surge, self.max_unavailable
        return StrategyConfig(
            type=self.type,
            retain_previous=self.retain_previous,
            drain_timeout=self.drain_timeout,
            steps=tuple(
                CanaryStep(
                    weight=s.weight,
                    pause=s.pause if isinstance(s.pause, float) else None,
                    manual=s.pause == "manual",
                    analysis=step_thresholds(self, s),
                )
                for s in self.steps or ()
            ),
            progress_deadline=self.progress_deadline,
            header=self.header,
            max_surge=resolve_amount(surge if surge is not None else 1, replicas, round_up=True),
            max_unavailable=resolve_amount(unavailable or 0, replicas, round_up=False),
        )


def _is_zero(amount: int | str) -> bool:
    return amount == 0 or amount == "0%"


def resolve_amount(amount: int | str, replicas: int, *, round_up: bool) -> int:
    """An instance count from a count or a percentage of ``replicas`` (as Kubernetes does:
    surge rounds up, unavailable rounds down)."""
    if isinstance(amount, int):
        return amount
    share = int(amount[:-1]) * replicas
    return -(-share // 100) if round_up else share // 100


def _merged(default: AnalysisSpec | None, own: AnalysisSpec | None) -> Thresholds:
    fields = {**(default.model_dump(exclude_none=True) if default else {})}
    fields.update(own.model_dump(exclude_none=True) if own else {})
    return Thresholds(**fields)


def step_thresholds(strategy: StrategySpec, step: CanaryStepSpec) -> Thresholds | None:
    """The step's analysis: its own thresholds over the strategy's default; None: none."""
    if strategy.analysis is None and step.analysis is None:
        return None
    return _merged(strategy.analysis, step.analysis)


MEMORY = r"^\d+(\.\d+)?[bkmg]?$"


class ServiceSpec(_Strict):
    build: str | None = Field(
        None, min_length=1, description="directory baked into an immutable artifact"
    )
    dockerfile: str | None = Field(None, min_length=1, description="relative to build")
    image: str | None = Field(
        None,
        min_length=1,
        description="prebuilt image: name:tag (resolved once) or name@sha256:...",
    )
    command: list[str] | None = Field(None, min_length=1, description="default: the image's")
    port: int = Field(8000, ge=1, le=65535)
    replicas: int = Field(1, ge=1, le=1000)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    secrets: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(default_factory=list)
    health: HealthSpec = Field(default_factory=HealthSpec)  # type: ignore[arg-type]
    volumes: dict[Annotated[str, Field(pattern=NAME)], Annotated[str, Field(pattern=r"^/")]] = (
        Field(default_factory=dict)
    )
    strategy: StrategySpec = Field(default_factory=StrategySpec)  # type: ignore[arg-type]
    cap_add: list[Annotated[str, Field(pattern=r"^[A-Z_]+$")]] = Field(default_factory=list)
    cpus: float | None = Field(None, gt=0)
    memory: str | None = Field(None, pattern=MEMORY, description="e.g. 256m, 1g")
    network: Literal["published", "host"] = "published"

    _env_names = field_validator("env")(_check_env_names)

    @model_validator(mode="after")
    def _one_source(self) -> ServiceSpec:
        if (self.build is None) == (self.image is None):
            raise ValueError("needs exactly one of build (a directory) or image")
        if self.dockerfile is not None and self.build is None:
            raise ValueError("dockerfile needs build (the Dockerfile's context)")
        return self

    @field_validator("secrets")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a secret twice")
        return value


class ServiceOverride(_Strict):
    """Fields an environment may override; ``env`` is merged, the rest replaced."""

    command: list[str] | None = Field(None, min_length=1)
    replicas: int | None = Field(None, ge=1, le=1000)
    env: dict[str, EnvValue] | None = None
    secrets: list[Annotated[str, Field(pattern=ENV_NAME)]] | None = None
    health: HealthSpec | None = None
    strategy: StrategySpec | None = None

    _env_names = field_validator("env")(_check_env_names)


class DockerSpec(_Strict):
    host: str | None = Field(None, description="engine address; default $DOCKER_HOST or the socket")


class RequiresSpec(_Strict):
    """Evidence a release needs before it may serve in this environment."""

    promoted_from: Name | None = Field(
        None, description="only releases promoted from this environment (`kiln promote`)"
    )
    min_soak: Duration = Field(
        0.0, description="how long the release must have served there, e.g. 30m"
    )


class DriftSpec(_Strict):
    """How the environment treats what runs otherwise than released."""

    interval: Annotated[Duration, Field(gt=0)] = Field(
        10.0, description="how often the controller looks (`kiln serve`)"
    )
    on_drift: Literal["enforce", "report"] = Field(
        "enforce", description="enforce: destroy, replace, restore; report: record only"
    )
    quarantine: Duration = Field(
        0.0,
        description="a tampered instance leaves the route at once and is kept this long "
        "for inspection before it is destroyed (0: replaced as any drift)",
    )


class NotifySpec(_Strict):
    webhook: str = Field(
        pattern=r"^https?://[^\s]+$",
        description="each drift finding and enforcement is POSTed here as JSON",
    )


class EnvironmentSpec(_Strict):
    provider: str = "local"
    notify: NotifySpec | None = None
    requires: RequiresSpec | None = None
    drift: DriftSpec = Field(default_factory=DriftSpec)  # type: ignore[arg-type]
    pin: Literal["resolve", "strict"] = Field(
        "resolve", description="strict: images must be pinned by digest (name@sha256:...)"
    )
    docker: DockerSpec | None = None
    routes: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")]] = Field(
        default_factory=dict, description="service -> host:port the router serves it on"
    )
    services: dict[str, ServiceOverride] = Field(default_factory=dict)


class Spec(_Strict):
    app: Name
    services: dict[Name, ServiceSpec] = Field(min_length=1)
    environments: dict[Name, EnvironmentSpec] = Field(min_length=1)

    def digest(self) -> str:
        """Digest of the validated content: comments and formatting do not change it."""
        return canonical_digest(self.model_dump(mode="json"))

    def select_env(self, name: str | None) -> str:
        """The environment a command acts on: the named one, or the only one there is."""
        if name is not None:
            if name not in self.environments:
                known = ", ".join(sorted(self.environments))
                raise NotFound(f"unknown environment {name!r} (environments: {known})")
            return name
        if len(self.environments) == 1:
            return next(iter(self.environments))
        known = ", ".join(sorted(self.environments))
        raise SpecError(f"several environments ({known}): choose one with -e/--env")

    def service(self, env: str, name: str) -> ServiceSpec:
        """The service as it runs in ``env``: base fields with the env's overrides applied."""
        base = self.services[name]
        override = self.environments[env].services.get(name)
        if override is None:
            return base
        changes: dict[str, Any] = {
            k: v for k, v in override.model_dump(exclude_none=True).items() if k != "env"
        }
        if override.env is not None:
            changes["env"] = {**base.env, **override.env}
        return ServiceSpec.model_validate({**base.model_dump(), **changes})

    def secret_names(self, env: str) -> set[str]:
        """Every secret the services of ``env`` are launched with."""
        return {n for name in self.services for n in self.service(env, name).secrets}


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kiln.yaml"
    return schema

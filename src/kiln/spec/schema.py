"""The shape of ``kiln.yaml`` as pydantic models; unknown keys are errors."""

from __future__ import annotations

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


class StrategySpec(_Strict):
    type: Literal["blue-green"] = "blue-green"
    retain_previous: Duration = 600.0
    drain_timeout: Duration = 30.0


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
    strategy: StrategySpec = Field(default_factory=StrategySpec)
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


class EnvironmentSpec(_Strict):
    provider: str = "local"
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


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kiln.yaml"
    return schema

"""What every strategy sees and returns, and dispatch by strategy type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kiln.model import DeploymentStatus, StepRecord, StrategyConfig
from kiln.model.steps import Step


@dataclass(frozen=True)
class Plan:
    """The fixed inputs of one deployment (the log supplies the rest)."""

    strategy: str
    # service -> fleet serving after the deployment; unchanged services keep their fleet
    new: dict[str, str]
    # service -> fleet serving before (None: new service); includes services being removed
    previous: dict[str, str | None]
    routed: frozenset[str]  # services that have a route in this environment
    retain_seconds: dict[str, float] = field(default_factory=dict)  # per service
    # fleets in ``new`` that were not launched for this deployment but reused warm
    reused: frozenset[str] = frozenset()
    # how traffic moves (canary steps, deadline); the routed services share it
    config: StrategyConfig = field(default_factory=StrategyConfig)
    # fleet -> its replica count (new and previous fleets): rolling moves instances
    replicas: dict[str, int] = field(default_factory=dict)
    # rolling: service -> (max_surge, max_unavailable), resolved against its own replicas
    batch_limits: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    status: DeploymentStatus
    reason: str = ""


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    """The next step of the deployment, or how it ends."""
    from kiln.strategies import bluegreen, canary, rolling

    strategies = {
        "blue-green": bluegreen.decide,
        "canary": canary.decide,
        "rolling": rolling.decide,
    }
    try:
        return strategies[plan.strategy](plan, log)
    except KeyError:
        raise ValueError(f"unknown strategy {plan.strategy!r}") from None

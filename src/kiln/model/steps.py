"""Deployment steps: the typed plan a strategy returns and the engine executes.

Every step is idempotent so that a controller killed halfway through one can
simply run it again on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from kiln.model.analysis import Thresholds


@dataclass(frozen=True)
class Launch:
    """Bring each fleet up to its replica count (launch only what is missing)."""

    fleets: tuple[str, ...]
    kind: Literal["launch"] = "launch"


@dataclass(frozen=True)
class WaitHealthy:
    """Wait until every instance of the fleets passed its health check."""

    fleets: tuple[str, ...]
    kind: Literal["wait_healthy"] = "wait_healthy"


@dataclass(frozen=True)
class SetRoutes:
    """Make the environment's routes exactly these, in one atomic router apply.

    A routed service missing from ``weights`` loses its route (service removed).
    """

    weights: dict[str, dict[str, int]]  # service -> fleet -> weight
    # fleet -> role ("canary", "stable"): a request naming the role in the route's
    # header reaches that fleet whatever its weight
    roles: dict[str, str] = field(default_factory=dict)
    kind: Literal["set_routes"] = "set_routes"


@dataclass(frozen=True)
class Analyze:
    """Judge each canary fleet against its stable fleet on the router's metrics.

    Fails as soon as a window with enough requests breaks a threshold; passes
    once a whole window did not; inconclusive windows keep it waiting, up to
    the deployment's progress deadline.
    """

    step: int  # index into the canary steps
    weight: int
    canary: dict[str, str]  # service -> canary fleet
    stable: dict[str, str]  # service -> stable fleet
    thresholds: Thresholds
    deadline: float  # seconds after the deployment started
    kind: Literal["analyze"] = "analyze"


@dataclass(frozen=True)
class Pause:
    """Hold at a canary step: for ``seconds``, or until `kiln advance` (None)."""

    step: int
    weight: int
    seconds: float | None
    deadline: float  # seconds after the deployment started
    kind: Literal["pause"] = "pause"


@dataclass(frozen=True)
class Grow:
    """Bring fleets up to these instance counts, then wait until all are healthy."""

    counts: dict[str, int]  # fleet -> instances it should have
    kind: Literal["grow"] = "grow"


@dataclass(frozen=True)
class Shrink:
    """Take fleets down to these counts: out of the route first, drained, destroyed."""

    counts: dict[str, int]  # fleet -> instances it keeps
    weights: dict[str, dict[str, int]]  # the routes without the instances that leave
    kind: Literal["shrink"] = "shrink"


@dataclass(frozen=True)
class Retain:
    """Keep fleets warm, out of the route, for instant rollback; retired later."""

    fleets: tuple[str, ...]
    seconds: float
    kind: Literal["retain"] = "retain"


@dataclass(frozen=True)
class Retire:
    """Drain in-flight requests of fleets out of the route, then destroy them."""

    fleets: tuple[str, ...]
    kind: Literal["retire"] = "retire"


@dataclass(frozen=True)
class Destroy:
    """Destroy the fleets a failed deployment brought in (drained first: a canary served)."""

    fleets: tuple[str, ...]
    kind: Literal["destroy"] = "destroy"


Step = Annotated[
    Launch | WaitHealthy | SetRoutes | Analyze | Pause | Grow | Shrink | Retain | Retire | Destroy,
    Field(discriminator="kind"),
]

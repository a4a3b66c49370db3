"""kiln's domain model: frozen dataclasses for the terms in DESIGN.md.

Pure data. No I/O, no SDK imports; every layer may import this package.
"""

from kiln.model.change import FileChange
from kiln.model.codec import from_json, to_json
from kiln.model.deployment import Deployment, DeploymentStatus, StepRecord, StepStatus
from kiln.model.digest import canonical_digest, sha256_hex
from kiln.model.event import Event
from kiln.model.fleet import Fleet, FleetState, Instance, Runtime
from kiln.model.lock import LockHolder
from kiln.model.release import (
    ArtifactSource,
    CanaryStep,
    HealthCheck,
    Promotion,
    Release,
    ServiceRelease,
    StrategyConfig,
)
from kiln.model.route import FleetMetrics, FleetRoute, Route, RouterMetrics, RouteTable
from kiln.model.secret import Secret
from kiln.model.steps import (
    Analyze,
    Destroy,
    Launch,
    Pause,
    Retain,
    Retire,
    SetRoutes,
    Step,
    WaitHealthy,
)

__all__ = [
    "Analyze",
    "ArtifactSource",
    "CanaryStep",
    "Deployment",
    "DeploymentStatus",
    "Destroy",
    "Event",
    "FileChange",
    "Fleet",
    "FleetMetrics",
    "FleetRoute",
    "FleetState",
    "HealthCheck",
    "Instance",
    "Launch",
    "LockHolder",
    "Pause",
    "Promotion",
    "Release",
    "Retain",
    "Retire",
    "Route",
    "RouteTable",
    "RouterMetrics",
    "Runtime",
    "Secret",
    "ServiceRelease",
    "SetRoutes",
    "Step",
    "StepRecord",
    "StepStatus",
    "StrategyConfig",
    "WaitHealthy",
    "canonical_digest",
    "from_json",
    "sha256_hex",
    "to_json",
]

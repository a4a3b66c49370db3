"""The spec: ``kiln.yaml`` loaded, validated and resolved per environment.

No I/O beyond reading the spec file and asking git which commit it is at.
"""

from kiln.spec.loader import load_spec, parse_spec
from kiln.spec.schema import (
    EnvironmentSpec,
    HealthSpec,
    ServiceSpec,
    Spec,
    StrategySpec,
    json_schema,
)

__all__ = [
    "EnvironmentSpec",
    "HealthSpec",
    "ServiceSpec",
    "Spec",
    "StrategySpec",
    "json_schema",
    "load_spec",
    "parse_spec",
]

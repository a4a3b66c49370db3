"""In-instance filesystem changes, as a provider reports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the artifact root (local) or "/" (containers)
    kind: Literal["added", "changed", "deleted"]

"""Secrets are a type, so a log line, an event or an exception cannot print one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secret:
    name: str
    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value, for the one place that needs it: an instance's environment."""
        return self._value

    @property
    def digest(self) -> str:
        # Keyed by name so two secrets with the same value do not share a digest.
        h = hashlib.sha256(f"kiln-secret\0{self.name}\0{self._value}".encode())
        return "sha256:" + h.hexdigest()

    def __str__(self) -> str:
        return f"<secret {self.name}>"

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, <redacted>)"

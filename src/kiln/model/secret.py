"""Secrets are a type, so a log line, an event or an exception cannot print one."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secret:
    name: str
    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value, for the one place that needs it: an instance's environment."""
        return self._value

    def digest(self, key: bytes) -> str:
        """An HMAC of name and value: comparable across releases, not reversible.

        Keyed by the state directory's secret key so a short secret cannot be
        guessed offline from a digest; the name is mixed in so two secrets with
        the same value do not share a digest.
        """
        mac = hmac.new(key, f"{self.name}\0{self._value}".encode(), hashlib.sha256)
        return "hmac-sha256:" + mac.hexdigest()

    def __str__(self) -> str:
        return f"<secret {self.name}>"

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, <redacted>)"

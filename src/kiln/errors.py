"""kiln's one exception tree.

Everything kiln raises on purpose derives from ``KilnError``; the CLI prints
one line for it and exits 1. Vendor exceptions (sqlalchemy, httpx, OS errors
from a provider) are translated at the boundary of ``store/``, ``router/`` and
``providers/`` and raised ``from`` the original, so nothing above those layers
ever catches a vendor exception::

    KilnError
    ├── SpecError            file, line, field: the spec is invalid
    ├── ProviderError        a provider could not do what was asked
    │   ├── TransientProviderError   retry_after seconds may help
    │   └── PermanentProviderError   retrying will not help
    ├── RouterError          the router is unreachable or refused a table
    │   └── RouteTableConflict   the table changed since it was read (retry)
    ├── StoreError           the state database failed
    ├── HealthCheckFailed    an instance never became healthy
    ├── DeploymentFailed     a deployment ended failed; the old release serves
    ├── LockHeld             another deployment holds the environment's lock
    ├── NotFound             an unknown release, service, environment, ...
    ├── SecretMissing        a declared secret is not in the environment
    └── AuditError           the event log's hash chain is broken
"""

from __future__ import annotations


class KilnError(Exception):
    """Base of every error kiln raises on purpose; ``str()`` is one line for the user."""


class SpecError(KilnError):
    def __init__(
        self, message: str, *, file: str = "", line: int | None = None, field: str = ""
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file
        if self.line is not None:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.field) if p]
        return ": ".join([*parts, self.message])


class ProviderError(KilnError):
    pass


class TransientProviderError(ProviderError):
    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentProviderError(ProviderError):
    pass


class RouterError(KilnError):
    pass


class RouteTableConflict(RouterError):
    pass


class StoreError(KilnError):
    pass


class HealthCheckFailed(KilnError):
    pass


class DeploymentFailed(KilnError):
    pass


class LockHeld(KilnError):
    def __init__(self, env: str, holder: str) -> None:
        self.env = env
        self.holder = holder
        super().__init__(f"environment {env!r} is locked by another deployment: {holder}")


class NotFound(KilnError):
    pass


class SecretMissing(KilnError):
    pass


class AuditError(KilnError):
    pass

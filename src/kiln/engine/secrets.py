"""Secret values come from the environment of the kiln command, and only at launch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kiln.errors import SecretMissing
from kiln.model import Secret


def resolve_secrets(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, Secret]:
    names = list(names)
    missing = [n for n in names if n not in environ]
    if missing:
        raise SecretMissing(
            f"secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} not set in the "
            "environment of this kiln command"
        )
    return {n: Secret(n, environ[n]) for n in names}


def secrets_for_launch(
    pinned: Mapping[str, str], environ: Mapping[str, str], release: int, key: bytes
) -> dict[str, Secret]:
    """Secret values whose digests match the release: a release pins secret versions."""
    secrets = resolve_secrets(pinned, environ)
    changed = [n for n, s in secrets.items() if s.digest(key) != pinned[n]]
    if changed:
        raise SecretMissing(
            f"secret {', '.join(changed)} changed since release {release} was made: "
            "deploy a new release to use the new value"
        )
    return secrets

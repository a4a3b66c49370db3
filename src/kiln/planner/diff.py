"""The difference between two releases of a service, safe to show: no secret values."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.model import ServiceRelease, to_json


@dataclass(frozen=True)
class ServiceDiff:
    artifact: tuple[str | None, str] | None  # (old, new) when it changed
    env_added: tuple[str, ...] = ()
    env_removed: tuple[str, ...] = ()
    env_changed: tuple[str, ...] = ()
    secrets_changed: tuple[str, ...] = ()  # names only: added, removed or new value
    fields_changed: tuple[str, ...] = ()  # command, replicas, health, ...

    @property
    def empty(self) -> bool:
        return not (
            self.artifact
            or self.env_added
            or self.env_removed
            or self.env_changed
            or self.secrets_changed
            or self.fields_changed
        )

    def summary(self) -> list[str]:
        out: list[str] = []
        if self.artifact:
            old, new = self.artifact
            out.append(f"artifact {_short(old)} -> {_short(new)}")
        out += [f"env +{k}" for k in self.env_added]
        out += [f"env -{k}" for k in self.env_removed]
        out += [f"env ~{k}" for k in self.env_changed]
        out += [f"secret {k} changed" for k in self.secrets_changed]
        out += [f"{k} changed" for k in self.fields_changed]
        return out


def _short(digest: str | None) -> str:
    if digest is None:
        return "(none)"
    return digest.split(":", 1)[-1][:12]


def diff_service(old: ServiceRelease | None, new: ServiceRelease) -> ServiceDiff:
    if old is None:
        return ServiceDiff(
            artifact=(None, new.artifact),
            env_added=tuple(sorted(new.env)),
            secrets_changed=tuple(sorted(new.secrets)),
        )
    secrets = {
        k
        for k in old.secrets.keys() | new.secrets.keys()
        if old.secrets.get(k) != new.secrets.get(k)
    }
    old_fields, new_fields = to_json(old), to_json(new)
    fields = [
        k
        for k in new_fields
        if k not in ("service", "artifact", "env", "secrets") and old_fields.get(k) != new_fields[k]
    ]
    return ServiceDiff(
        artifact=(old.artifact, new.artifact) if old.artifact != new.artifact else None,
        env_added=tuple(sorted(new.env.keys() - old.env.keys())),
        env_removed=tuple(sorted(old.env.keys() - new.env.keys())),
        env_changed=tuple(
            sorted(k for k in old.env.keys() & new.env.keys() if old.env[k] != new.env[k])
        ),
        secrets_changed=tuple(sorted(secrets)),
        fields_changed=tuple(fields),
    )

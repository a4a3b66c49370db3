"""What an instance is started with: a clean environment, a free port, kiln's labels.

The environment is built from nothing, never copied from kiln's own (which may
hold the operator's credentials): only PATH and the locale pass through. Secret
values are revealed here and only here, straight into the child's environment;
this module must never log or return them anywhere else.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Collection, Mapping
from pathlib import Path

from kiln.errors import TransientProviderError
from kiln.model import Secret

# kiln's labels, as environment variables; observe() reads them back from /proc.
LABEL_VARS = {
    "state_id": "KILN_STATE_ID",
    "app": "KILN_APP",
    "env": "KILN_ENV",
    "service": "KILN_SERVICE",
    "release": "KILN_RELEASE",
    "fleet": "KILN_FLEET",
    "instance": "KILN_INSTANCE",
    "artifact": "KILN_ARTIFACT",
    "config": "KILN_CONFIG",
}


def volume_var(name: str) -> str:
    """``KILN_VOLUME_<NAME>``: upper-cased, anything not alphanumeric becomes ``_``."""
    return "KILN_VOLUME_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def build_env(
    *,
    spec_env: Mapping[str, str],
    secrets: Mapping[str, Secret],
    port: int,
    scratch: Path,
    volumes: Mapping[str, Path],
    labels: Mapping[str, str],
) -> dict[str, str]:
    """The instance's whole environment; later entries win, so labels cannot be spoofed."""
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    for name in ("LANG", "LC_ALL"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(spec_env)
    for name, secret in secrets.items():
        env[name] = secret.reveal()
    env.update(PORT=str(port), HOME=str(scratch), TMPDIR=str(scratch))
    for volume, path in volumes.items():
        env[volume_var(volume)] = str(path)
    for key, value in labels.items():
        env[LABEL_VARS[key]] = value
    return env


# What build_env adds to every instance's environment, whatever its release says.
_OWN = {"PATH", "LANG", "LC_ALL", "PORT", "HOME", "TMPDIR", *LABEL_VARS.values()}


def app_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of an instance's environment that its release gave: build_env's own
    variables (the path, locale, port, scratch, volume variables, labels) left out."""
    return {k: v for k, v in env.items() if k not in _OWN and not k.startswith("KILN_VOLUME_")}


def labels_from_env(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[var] for key, var in LABEL_VARS.items() if var in env}


def free_port(taken: Collection[int], attempts: int = 50) -> int:
    """A port on 127.0.0.1 that is free now and not in ``taken``.

    The kernel picks (bind to port 0); ``taken`` holds ports other instances
    were given, which may be momentarily unbound (e.g. one still starting).
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            return port
    raise TransientProviderError("no free port on 127.0.0.1", retry_after=1.0)

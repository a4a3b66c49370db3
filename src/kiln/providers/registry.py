"""Providers by name, imported only when asked for.

Each entry is a ``"module:Class"`` string, so ``kiln`` starts without importing
any provider's SDK (docker, boto3, ...) and works without the optional ones
installed. Core code gets a provider here and then asks its ``capabilities``;
it must never branch on the name.
"""

from __future__ import annotations

import importlib
from typing import cast

from kiln.errors import NotFound, PermanentProviderError
from kiln.providers.base import Provider, ProviderContext

_PROVIDERS: dict[str, str] = {
    "docker": "kiln.providers.docker:DockerProvider",
    "local": "kiln.providers.local:LocalProvider",
}


def known_providers() -> list[str]:
    return sorted(_PROVIDERS)


def get_provider(name: str, ctx: ProviderContext) -> Provider:
    """A new provider ``name`` for ``ctx``; NotFound if kiln knows no such provider."""
    target = _PROVIDERS.get(name)
    if target is None:
        known = ", ".join(known_providers())
        raise NotFound(f"unknown provider {name!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # Typically an optional SDK that is not installed.
        raise PermanentProviderError(f"provider {name!r} cannot be loaded: {exc}") from exc
    factory = getattr(module, class_name)
    return cast(Provider, factory(ctx))

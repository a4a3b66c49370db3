"""The local provider: processes on this machine, run from read-only artifact directories."""

from kiln.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]

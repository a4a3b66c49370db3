"""The controller's HTTP API: thin, authenticated, described by OpenAPI."""

from kiln.api.app import create_app

__all__ = ["create_app"]

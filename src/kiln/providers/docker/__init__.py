"""The docker provider: sealed containers from digest-pinned images on a Docker engine.

Importing this package does not import the docker SDK; the provider does, when
it is created.
"""

from kiln.providers.docker.provider import DockerProvider

__all__ = ["DockerProvider"]

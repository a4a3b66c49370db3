"""The connection to a Docker engine, and the translation of its errors.

The ``docker`` SDK is imported here, lazily and only here, so that importing
kiln (or any other provider) never imports it. It ships no type information,
so it is imported through ``importlib`` and handled as ``Any``; everything this
package hands upwards is typed.

No exception of the SDK (or of ``requests`` underneath it) may leave this
package: every call into the engine goes through ``engine_call``, which turns
them into ``kiln.errors`` provider errors raised ``from`` the original.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from kiln.errors import PermanentProviderError, ProviderError, TransientProviderError

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
# Short, so an unreachable engine is reported before anything starts; builds
# and long-running calls pass their own timeouts.
CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 60

# HTTP statuses of the engine API a retry can cure.
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def sdk() -> Any:
    """The ``docker`` module, imported on first use."""
    try:
        return importlib.import_module("docker")
    except ImportError as exc:
        raise PermanentProviderError(
            f"the docker provider needs the 'docker' Python package: {exc}"
        ) from exc


def engine_address(options: Mapping[str, object]) -> str:
    """The spec's ``docker: {host: ...}``, else kiln's caller's ``DOCKER_HOST``, else the socket."""
    host = options.get("host")
    if isinstance(host, str) and host:
        return host
    environ = options.get("environ")
    if isinstance(environ, Mapping):
        value = environ.get("DOCKER_HOST")
        if isinstance(value, str) and value:
            return value
    return DEFAULT_ADDRESS


def _one_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc) or type(exc).__name__
    return " ".join(text.split())


def connect(address: str) -> Any:
    """A ``docker.DockerClient`` for ``address`` that has answered a ping."""
    docker = sdk()
    try:
        client = docker.DockerClient(base_url=address, timeout=CONNECT_TIMEOUT)
        client.ping()
    except Exception as exc:  # any failure here means the same thing to the user
        raise PermanentProviderError(
            f"cannot reach the Docker engine at {address}: {_one_line(exc)}"
        ) from exc
    # The ping was quick; real work (pulls, stops with a grace period) is not.
    client.api.timeout = CALL_TIMEOUT
    return client


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, sdk().errors.NotFound)


def translate(exc: Exception, what: str) -> ProviderError:
    """A kiln error for an SDK error; the caller raises it ``from exc``."""
    errors = sdk().errors
    message = f"{what}: {_one_line(exc)}"
    if isinstance(exc, errors.APIError):
        status = exc.status_code
        if status is not None and status in _TRANSIENT_STATUSES:
            return TransientProviderError(message, retry_after=1.0)
        return PermanentProviderError(message)
    if isinstance(exc, errors.DockerException):
        return PermanentProviderError(message)
    # requests' ConnectionError / Timeout: the engine went away or is slow.
    return TransientProviderError(message, retry_after=2.0)


def _engine_errors() -> tuple[type[BaseException], ...]:
    # The SDK's own tree, and what its transport raises: requests' errors are
    # OSErrors; urllib3's (a stream cut mid-read) are not.
    urllib3 = importlib.import_module("urllib3")
    return (sdk().errors.DockerException, OSError, urllib3.exceptions.HTTPError)


@contextlib.contextmanager
def engine_call(what: str) -> Iterator[None]:
    """Run a block of engine calls; any SDK or transport error becomes a kiln error.

    Other exceptions (a bug in kiln) pass through with their traceback.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        if isinstance(exc, _engine_errors()):
            raise translate(exc, what) from exc
        raise

"""HTTP health probes of instances: the one place health checks touch the network."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx


class Prober:
    """Probes many instances at once over one keep-alive client."""

    def __init__(self, timeout: float) -> None:
        # Probes are plain HTTP to instances: verify=False skips loading the CA bundle
        # (0.1-0.5 s), which would otherwise delay every health gate.
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=False
        )
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kiln-probe")

    def probe(self, address: str, path: str) -> str | None:
        """None when healthy (2xx/3xx), else why not, in a few words."""
        try:
            response = self._client.get(f"http://{address}{path}")
        except httpx.TimeoutException:
            return "timed out"
        except httpx.HTTPError as e:
            return type(e).__name__ if not str(e) else str(e).splitlines()[0]
        if response.status_code >= 400:
            return f"HTTP {response.status_code}"
        return None

    def probe_all(self, targets: Iterable[tuple[str, str]]) -> list[str | None]:
        return list(self._pool.map(lambda t: self.probe(*t), targets))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A webhook: POSTs JSON payloads from a background thread, retried with backoff.

``send`` only enqueues, so the reconcile loop is never held up by a slow or
dead receiver. A payload that still fails after every attempt is dropped
(the audit log has it anyway); ``close`` waits, bounded, for the queue.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

ATTEMPTS = 5
BACKOFF = 0.5  # seconds before the 2nd attempt; doubles each time
TIMEOUT = 5.0
_STOP = object()


class Webhook:
    def __init__(
        self,
        url: str,
        *,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        on_give_up: Callable[[str], None] = lambda why: None,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.on_give_up = on_give_up
        self.delivered = 0
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kiln-webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> None:
        self._queue.put(json.dumps(payload, sort_keys=True, default=str))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT) as http:
            while (body := self._queue.get()) is not _STOP:
                assert isinstance(body, str)
                self._deliver(http, body)

    def _deliver(self, http: httpx.Client, body: str) -> None:
        why = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = http.post(
                    self.url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
                continue
            if response.is_success:
                self.delivered += 1
                return
            why = f"HTTP {response.status_code}"
        self.on_give_up(f"webhook {self.url} gave up after {self.attempts} attempts: {why}")

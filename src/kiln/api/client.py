"""The CLI's side of a running controller: find it, submit a job, follow it.

The controller serves ``STATE/controller.sock`` and leaves a token for the
CLI beside it; both are private to the state directory's owner. A socket left
by a killed controller refuses connections, and then there is no controller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kiln.api.files import SOCKET, TOKEN
from kiln.api.jobs import replay
from kiln.engine.reporter import Reporter
from kiln.errors import KilnError

POLL = 0.2  # seconds between looks at a job: a step takes far longer


@dataclass
class Controller:
    http: httpx.Client
    spec: Path
    pid: int

    def close(self) -> None:
        self.http.close()

    def submit(self, path: str, body: dict[str, Any]) -> int:
        """POST a deploy, rollback or promotion; returns the job's id."""
        try:
            response = self.http.post(path, json=body)
        except httpx.TransportError as e:
            raise KilnError(f"the controller (pid {self.pid}) did not answer: {e}") from None
        if response.status_code != 202:
            raise KilnError(_detail(response))
        return int(response.json()["job"])

    def run(self, kind: str, env: str, body: dict[str, Any], reporter: Reporter) -> str:
        """Submit a deploy, rollback or promotion, follow it to its end; its message, or
        a ``KilnError`` with it if the job failed."""
        job = self.submit(f"/v1/environments/{env}/{kind}", body)
        reporter.info(f"{kind} runs in the controller (pid {self.pid}) as job {job}")
        view = self.follow(job, reporter)
        if view["state"] != "succeeded":
            raise KilnError(view["message"])
        return str(view["message"])

    def follow(self, job: int, reporter: Reporter) -> dict[str, Any]:
        """Replay the job's reports until it ends; returns its final view."""
        since = 0
        while True:
            try:
                response = self.http.get(f"/v1/jobs/{job}", params={"since": since})
            except httpx.TransportError:
                raise KilnError(
                    f"lost the controller (pid {self.pid}) while following job {job}; a "
                    "deployment it left is finished or rolled back by the next `kiln serve` "
                    "or `kiln resume` (see `kiln status`)"
                ) from None
            if response.status_code != 200:
                raise KilnError(f"job {job}: {_detail(response)}")
            view: dict[str, Any] = response.json()
            for entry in view["reports"]:
                replay(entry, reporter)
            since = view["next"]
            if view["state"] != "running":
                return view
            if view["progress"]:
                reporter.progress(view["progress"])
            time.sleep(POLL)


def connect(state: Path) -> Controller | None:
    """The controller serving ``state``, or None if none runs."""
    socket, token = state / SOCKET, state / TOKEN
    try:
        secret = token.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KilnError(f"cannot read the controller's token {token}: {e.strerror}") from None
    if not socket.exists():
        return None
    http = httpx.Client(
        # Plain HTTP over a unix socket: as in the router's client, verify=False skips
        # loading the CA bundle, which costs 0.1-0.5 s on every command.
        transport=httpx.HTTPTransport(uds=str(socket), verify=False),
        base_url="http://controller",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    try:
        response = http.get("/v1/controller")
    except httpx.TransportError:  # a killed controller's socket
        http.close()
        return None
    if response.status_code != 200:
        http.close()
        raise KilnError(f"the controller at {socket} refused the CLI: {_detail(response)}")
    info = response.json()
    return Controller(http, Path(info["spec"]), int(info["pid"]))


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail) if isinstance(detail, str) else f"HTTP {response.status_code}"

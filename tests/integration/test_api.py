"""The controller's HTTP API, served by a real `kiln serve` over TCP and its unix socket."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.testing.ports import free_port
from tests.integration.harness import Project, wait_for

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


class Api:
    def __init__(self, project: Project, port: int, token: str) -> None:
        self.project = project
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.auth = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> httpx.Response:
        return httpx.post(self.base + path, timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture
def api(local_project: Project) -> Iterator[Api]:
    project = local_project
    token = project.kiln("token", "create", "ci").stdout.strip()
    port = free_port()
    server = project.popen("serve", "--listen", f"127.0.0.1:{port}")
    a = Api(project, port, token)

    def up() -> bool:
        try:
            return a.get("/openapi.json").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30, what="the API to answer")
    yield a
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


def operations(api: Api) -> list[tuple[str, str]]:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def concrete(path: str) -> str:
    return path.replace("{env}", "dev").replace("{gate}", "pause")


def test_every_endpoint_rejects_a_missing_or_wrong_token(api: Api) -> None:
    ops = operations(api)
    assert len(ops) >= 8
    for method, path in ops:
        for headers in ({}, {"Authorization": "Bearer kiln_not-a-real-token"}):
            r = httpx.request(method, api.base + concrete(path), headers=headers, json={})
            assert r.status_code == 401, (method, path, r.status_code)
    # The audit log never holds a token, good or bad.
    assert api.token not in (api.project.state / "kiln.db").read_bytes().decode("latin-1")


def test_read_endpoints_with_a_token(api: Api) -> None:
    assert api.get("/v1/environments", headers=api.auth).json() == ["dev"]
    status = api.get("/v1/environments/dev/status", headers=api.auth).json()
    assert status["current_release"] is None
    assert api.get("/v1/environments/nope/status", headers=api.auth).status_code == 404
    assert api.get("/v1/environments/dev/drift", headers=api.auth).json() == []


def test_deploy_and_gates_through_the_api_and_the_unix_socket(api: Api) -> None:
    r = api.post("/v1/environments/dev/deploy", headers=api.auth, json={"reason": "ship it"})
    assert r.status_code == 202
    wait_for(
        lambda: api.get("/v1/environments/dev/status", headers=api.auth).json()["current_release"],
        timeout=60,
        what="the deploy started through the API",
    )
    assert api.project.serving() == {"v1 hello"}
    gate = api.post("/v1/environments/dev/gates/abort", headers=api.auth, json={})
    assert gate.status_code == 404
    assert gate.json()["detail"] == "no deployment is running in hello/dev"
    events = api.get("/v1/events", headers=api.auth).json()
    started = [e for e in events if e["action"] == "deploy.started"]
    assert started[0]["actor"] == "api:ci"
    assert started[0]["reason"] == "ship it"
    # The same API on the unix socket in the state directory.
    transport = httpx.HTTPTransport(uds=str(api.project.state / "controller.sock"))
    with httpx.Client(transport=transport, base_url="http://kiln") as client:
        assert client.get("/v1/environments", headers=api.auth).json() == ["dev"]
        assert client.get("/v1/environments").status_code == 401


def test_revoked_tokens_stop_working_at_once(api: Api) -> None:
    assert api.get("/v1/environments", headers=api.auth).status_code == 200
    api.project.kiln("token", "revoke", "ci")
    assert api.get("/v1/environments", headers=api.auth).status_code == 401
    again = api.project.kiln("token", "revoke", "ci", check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: no token named 'ci'"


def test_schemathesis_finds_no_server_error(api: Api) -> None:
    proc = subprocess.run(
        [
            SCHEMATHESIS, "run", api.base + "/openapi.json",
            "--checks", "not_a_server_error",
            "-H", f"Authorization: Bearer {api.token}",
            "--max-examples", "15",
            "--no-color",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout or "passed" in proc.stdout, proc.stdout[-2000:]

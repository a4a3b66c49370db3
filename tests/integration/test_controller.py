"""The controller (`kiln serve`) and drift webhooks, with real processes and HTTP."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kiln.providers.local.procfs import read_stat
from kiln.testing.load import Load
from tests.integration.harness import Project, wait_for


def fast_drift(project: Project, extra: str = "") -> None:
    project.edit_spec(
        "    provider: local\n", f"    provider: local\n    drift: {{interval: 0.5s}}\n{extra}"
    )


def alive(project: Project) -> list[dict[str, Any]]:
    st = project.status()
    return [i for f in st["fleets"] if f["state"] == "active" for i in f["instances"] if i["alive"]]


def pid(instance: dict[str, Any]) -> int:
    return int(instance["ref"].split(":")[0])


def test_controller_heals_and_its_kill_9_interrupts_nothing(local_project: Project) -> None:
    project = local_project
    fast_drift(project)
    project.kiln("deploy")
    controller = project.popen("serve", "--listen", "")
    # An instance dies (before the load: requests in flight to a killed process are
    # lost whoever replaces it); the controller replaces it.
    victim = alive(project)[0]
    os.kill(pid(victim), signal.SIGKILL)

    def healed() -> bool:
        now = alive(project)
        return len(now) == 3 and victim["id"] not in {i["id"] for i in now}

    wait_for(healed, timeout=30, what="the controller to replace the killed instance")
    before = {i["id"] for i in alive(project)}
    with Load(project.url, clients=8, max_seconds=120) as load:
        # kill -9 of the controller under load: the router keeps serving, nothing is lost.
        controller.kill()
        controller.wait()
        again = project.popen("serve", "--listen", "")
        time.sleep(2)  # four intervals: the restarted controller has looked
        result = load.stop()
    again.send_signal(signal.SIGTERM)
    again.wait(timeout=30)
    assert result.failed == 0, result.errors
    assert result.ok > 0
    assert {i["id"] for i in alive(project)} == before  # no duplicates, nothing replaced
    (found,) = json.loads(project.kiln("drift", "--json", "--all").stdout)
    assert found["finding"]["kind"] == "missing_instance"
    assert found["resolution"].startswith("replaced")


def test_controller_finishes_a_deployment_a_dead_kiln_left(local_project: Project) -> None:
    project = local_project
    fast_drift(project)
    project.kiln("deploy")
    project.set_version("v2")
    died = project.kiln("deploy", check=False, extra_env={"KILN_FAILPOINT": "before:set_routes"})
    assert died.returncode == -9
    controller = project.popen("serve", "--listen", "")
    wait_for(
        lambda: project.status()["running_deployment"] is None,
        timeout=60,
        what="the controller to resume the deployment",
    )
    controller.send_signal(signal.SIGTERM)
    controller.wait(timeout=30)
    st = project.status()
    assert st["last_deployment"]["status"] == "succeeded"
    assert st["current_release"]["number"] == 2
    assert project.serving() == {"v2 hello"}


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails its first request."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls += 1
                if outer.calls == 1:
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(data))
                    self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_webhook_gets_each_finding_and_action_retried(
    local_project: Project, receiver: Receiver
) -> None:
    project = local_project
    fast_drift(project, f"    notify: {{webhook: {receiver.url}}}\n")
    project.kiln("deploy")
    os.kill(pid(alive(project)[0]), signal.SIGKILL)
    project.kiln("reconcile")  # returns once the webhook has delivered (bounded)
    events = [b["event"] for b in receiver.bodies]
    assert events == ["drift.found", "drift.enforced"]
    assert receiver.calls == 3  # the first delivery failed and was retried
    found = receiver.bodies[0]
    assert found["app"] == "hello"
    assert found["env"] == "dev"
    assert found["finding"]["finding"]["kind"] == "missing_instance"
    assert receiver.bodies[1]["resolution"].startswith("replaced")


def test_the_controller_retires_a_retained_fleet_when_its_window_ends(
    local_project: Project,
) -> None:
    project = local_project
    fast_drift(project)
    project.edit_spec("retain_previous: 10m", "retain_previous: 5s")
    project.kiln("deploy")
    project.set_version("v2")
    project.kiln("deploy")
    (retained,) = [f for f in project.status()["fleets"] if f["state"] == "retained"]
    assert retained["id"] == "hello.dev.web.r1"
    pids = [pid(i) for i in retained["instances"]]
    assert len(pids) == 3
    controller = project.popen("serve", "--listen", "")
    # Watched through /proc, not kiln: `kiln status` would retire the fleet itself.
    wait_for(
        lambda: not any(gone is not None and gone.running for gone in map(read_stat, pids)),
        timeout=30,
        what="the controller to retire the retained fleet",
    )
    states = {f["id"]: f["state"] for f in project.status()["fleets"]}
    assert states.get("hello.dev.web.r1", "retired") == "retired"
    assert project.serving() == {"v2 hello"}
    controller.send_signal(signal.SIGTERM)
    controller.wait(timeout=30)

"""Fleets after the switch: retained warm, retired when the window ends, drained first;
`kiln down` keeps volumes unless asked."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from tests.integration.harness import Project, wait_for

pytestmark = pytest.mark.integration


# Local only (CI time): retiring on time is the engine's; docker destroys are tested everywhere.
@pytest.mark.parametrize("project", ["local"], indirect=True)
def test_retained_fleet_is_retired_by_a_later_command_after_its_window(project: Project) -> None:
    project.edit_spec("retain_previous: 10m", "retain_previous: 10s")
    project.kiln("deploy")
    project.set_version("v2")
    project.kiln("deploy")
    retained = [f for f in project.status()["fleets"] if f["state"] == "retained"]
    assert [f["id"] for f in retained] == ["hello.dev.web.r1"]
    # Any kiln command retires what is due; status is one.
    wait_for(
        lambda: [f["id"] for f in project.status()["fleets"]] == ["hello.dev.web.r2"],
        what="the retained fleet to be retired",
    )
    st = project.status()
    assert st["strays"] == []
    events = project.kiln("audit", "log").stdout
    assert "fleet.retired" in events


def test_in_flight_request_to_the_old_fleet_finishes(project: Project) -> None:
    project.edit_spec("retain_previous: 10m", "retain_previous: 0s")
    project.kiln("deploy")
    answers: list[str] = []

    def slow() -> None:
        with urllib.request.urlopen(project.url + "/slow?s=3", timeout=30) as r:
            answers.append(r.read().decode().strip())

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the request is in flight at v1
    project.set_version("v2")
    project.kiln("deploy")  # retain 0: v1 is drained, then stopped
    thread.join(timeout=30)
    assert answers == ["v1 slow done"]
    st = project.status()
    assert [f["id"] for f in st["fleets"]] == ["hello.dev.web.r2"]


def test_down_keeps_volumes_unless_asked(project: Project) -> None:
    project.kiln("deploy")
    req = urllib.request.Request(project.url + "/data", data=b"precious", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 201
    out = project.kiln("down")
    assert "stopped 3 instance(s)" in out.stdout
    st = project.status()
    assert all(f["alive"] == 0 for f in st["fleets"])
    project.kiln("deploy")
    assert "precious" in project.get("/data")
    project.kiln("down", "--volumes")
    project.kiln("deploy")
    assert "precious" not in project.get("/data")

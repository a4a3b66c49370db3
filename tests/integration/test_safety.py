"""Secrets never leak, the audit log proves tampering, bad input changes nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.integration.harness import SECRET, Project, make_project

pytestmark = pytest.mark.integration


def all_bytes_under(root: Path) -> bytes:
    out = b""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket():
            out += path.read_bytes()
    return out


def test_secret_value_never_appears_anywhere(project: Project) -> None:
    outputs = [
        project.kiln("deploy"),
        project.kiln("plan"),
        project.kiln("status"),
        project.kiln("status", "--json"),
        project.kiln("history", "--json"),
        project.kiln("audit", "log", "--json"),
        project.kiln("logs", "web"),
    ]
    project.env["API_TOKEN"] = "rotated-" + SECRET
    outputs.append(project.kiln("plan"))
    outputs.append(project.kiln("deploy"))
    for proc in outputs:
        assert SECRET not in proc.stdout + proc.stderr
    assert SECRET.encode() not in all_bytes_under(project.state)
    # ... yet the instances got it, and rotating it made a new release.
    hist = json.loads(project.kiln("history", "--json").stdout)
    assert [h["release"]["number"] for h in hist] == [2, 1]
    assert (
        hist[0]["release"]["services"]["web"]["secrets"]["API_TOKEN"]
        != hist[1]["release"]["services"]["web"]["secrets"]["API_TOKEN"]
    )
    assert "secret API_TOKEN changed" in outputs[-2].stdout


def test_audit_verify_detects_an_edited_event(project: Project) -> None:
    project.kiln("deploy")
    ok = project.kiln("audit", "verify")
    assert "chain intact" in ok.stdout
    db = sqlite3.connect(project.state / "kiln.db")
    with db:
        db.execute("UPDATE events SET actor = 'mallory@evil' WHERE seq = 2")
    db.close()
    bad = project.kiln("audit", "verify", check=False)
    assert bad.returncode == 1
    assert "event 2" in bad.stderr


def test_missing_secret_is_a_clear_error_and_changes_nothing(project: Project) -> None:
    del project.env["API_TOKEN"]
    proc = project.kiln("deploy", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: secret API_TOKEN not set in the environment of this kiln command"
    )
    assert json.loads(project.kiln("history", "--json").stdout) == []


def test_spec_error_names_file_line_and_field(project: Project) -> None:
    project.edit_spec("port: 8000", "port: 99999")
    for command in ("validate", "deploy", "status"):
        proc = project.kiln(command, check=False)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: kiln.yaml:6: services.web.port:")
        assert proc.stderr.count("\n") == 1
    assert not project.state.exists()  # nothing was created


def test_usage_error_exits_2(project: Project) -> None:
    proc = project.kiln("deploy", "--bogus", check=False)
    assert proc.returncode == 2


def test_init_writes_a_starter_that_validates(tmp_path: Path, project: Project) -> None:
    target = tmp_path / "fresh"
    proc = project.kiln("init", str(target))
    assert "kiln.yaml" in proc.stdout
    assert "ok" in project.kiln("validate", "--spec", str(target / "kiln.yaml")).stdout
    again = project.kiln("init", str(target), check=False)
    assert again.returncode == 1


def test_plan_shows_the_diff_without_changing_anything(project: Project) -> None:
    project.kiln("deploy")
    project.set_version("v2")
    project.edit_spec("env: {GREETING: hello}", "env: {GREETING: hi}")
    out = project.kiln("plan").stdout
    assert "launch 3 instance(s) as hello.dev.web.r2" in out
    assert "3 instance(s) of hello.dev.web.r1 leave the route" in out
    assert "env ~GREETING" in out
    assert "artifact" in out
    assert "switch routes" in out
    assert project.status()["current_release"]["number"] == 1
    assert project.serving() == {"v1 hello"}


def test_unreachable_engine_is_one_line_naming_it_and_changes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path, "docker")  # needs no engine: that is the point
    project.edit_spec(
        "    provider: docker",
        "    provider: docker\n    docker: {host: unix:///nonexistent/docker.sock}",
    )
    for command in ("deploy", "status", "plan"):
        proc = project.kiln(command, check=False)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(
            "error: cannot reach the Docker engine at unix:///nonexistent/docker.sock"
        )
    assert json.loads(project.kiln("history", "--json").stdout) == []

"""Promotion from staging to production: the same artifact, the target's config, evidence."""

from __future__ import annotations

import json
import time
import urllib.request

from kiln.testing.ports import free_port
from tests.integration.harness import Project


def two_environments(project: Project, min_soak: str) -> str:
    """Rename dev to staging and add production (which takes promotions only); its URL."""
    port = free_port()
    project.edit_spec("  dev:\n", "  staging:\n")
    spec = project.root / "kiln.yaml"
    spec.write_text(
        spec.read_text()
        + f"  production:\n    provider: {project.provider}\n"
        + f'    routes: {{web: "127.0.0.1:{port}"}}\n'
        + f"    requires: {{promoted_from: staging, min_soak: {min_soak}}}\n"
        + "    services: {web: {env: {GREETING: bonjour}, replicas: 2}}\n"
    )
    return f"http://127.0.0.1:{port}"


def history(project: Project, env: str) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(project.kiln("history", "-e", env, "--json").stdout)
    return data


def test_promotion_keeps_the_digest_and_requires_evidence(local_project: Project) -> None:
    project = local_project
    production = two_environments(project, "2s")

    # production takes promotions only: a plain deploy is refused, and changes nothing.
    refused = project.kiln("deploy", "-e", "production", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: production only takes releases promoted from staging: "
        "`kiln promote --from staging --to production`"
    )
    assert history(project, "production") == []

    project.kiln("deploy", "-e", "staging")
    # Too soon: staging's release has not soaked for 2s yet.
    early = project.kiln("promote", "--from", "staging", "--to", "production", check=False)
    assert early.returncode == 1
    assert "production requires 2s of soak in staging; release 1 has served there for" in (
        early.stderr
    )
    assert history(project, "production") == []

    # The source changes after staging baked it: promotion must not pick that up.
    project.set_version("v2")
    time.sleep(2)
    out = project.kiln("promote", "--from", "staging", "--to", "production")
    assert "release 1 serves hello/production" in out.stdout

    staging_release = history(project, "staging")[0]["release"]
    promoted = history(project, "production")[0]["release"]
    assert isinstance(staging_release, dict)
    assert isinstance(promoted, dict)
    web, source_web = promoted["services"]["web"], staging_release["services"]["web"]
    assert web["artifact"] == source_web["artifact"]  # the very artifact, not rebuilt
    assert web["env"]["GREETING"] == "bonjour"  # production's own config
    assert web["replicas"] == 2
    evidence = promoted["promotion"]
    assert evidence["env"] == "staging"
    assert evidence["release"] == 1
    assert evidence["result"] == "succeeded"
    assert evidence["soak_seconds"] >= 2
    assert promoted["reason"] == "promote staging release 1"

    with urllib.request.urlopen(production + "/", timeout=5) as r:
        assert r.read().decode().splitlines()[0] == "v1 bonjour"

    events = json.loads(project.kiln("audit", "log", "--json", "-e", "production").stdout)
    assert "release.promoted" in [e["action"] for e in events]


def test_promotion_refuses_what_cannot_be_promoted(local_project: Project) -> None:
    project = local_project
    two_environments(project, "0s")
    nothing = project.kiln("promote", "--from", "staging", "--to", "production", check=False)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == "error: nothing serves in hello/staging to promote"

    project.kiln("deploy", "-e", "staging")
    unknown = project.kiln("promote", "7", "--from", "staging", "--to", "production", check=False)
    assert unknown.returncode == 1
    assert "release 7" in unknown.stderr

    itself = project.kiln("promote", "--from", "staging", "--to", "staging", check=False)
    assert itself.returncode == 1
    assert "cannot promote staging to itself" in itself.stderr

    # An artifact the target's provider does not have is never rebuilt there.
    # (A local artifact is its directory plus its manifest: without the manifest, it is gone.)
    manifests = list(project.state.glob("**/artifacts/*.json"))
    assert manifests
    for manifest in manifests:
        manifest.unlink()
    gone = project.kiln("promote", "--from", "staging", "--to", "production", check=False)
    assert gone.returncode == 1
    assert "promotion never rebuilds" in gone.stderr
    assert history(project, "production") == []

"""Drift findings and applied routes in a real SQLite database."""

from __future__ import annotations

import pytest

from kiln.errors import NotFound
from kiln.model import FileChange, FleetRoute, Route
from kiln.model.drift import DriftKind, Finding
from kiln.store import Store

TAMPERED = Finding(
    kind=DriftKind.IN_INSTANCE_CHANGE,
    env="dev",
    subject="a.dev.web.r1.abc",
    summary="1 file(s) changed",
    fleet="a.dev.web.r1",
    instance_ref="pid:1",
    changes=(FileChange("/app/x", "changed"),),
)


def test_applied_routes_round_trip(store: Store) -> None:
    assert store.applied_routes("a", "dev") is None
    routes = (
        Route("a/dev/web", "127.0.0.1:1", (FleetRoute("f", 100, ("127.0.0.1:2",), "stable"),)),
    )
    store.set_applied_routes("a", "dev", routes)
    store.set_applied_routes("a", "dev", routes)  # replaced, not duplicated
    assert store.applied_routes("a", "dev") == routes
    assert store.applied_routes("a", "prod") is None


def test_an_open_finding_is_recorded_once_until_resolved(store: Store) -> None:
    (first,) = store.record_findings("a", [TAMPERED])
    (again,) = store.record_findings("a", [TAMPERED])
    assert again.id == first.id
    assert first.finding == TAMPERED
    assert [r.id for r in store.findings("a", "dev", open_only=True)] == [first.id]

    store.resolve_finding(first.id, "replaced by a.dev.web.r1.def")
    done = store.finding("a", first.id)
    assert done.resolution == "replaced by a.dev.web.r1.def"
    assert done.resolved_at is not None
    assert store.findings("a", "dev", open_only=True) == []
    (later,) = store.record_findings("a", [TAMPERED])  # tampered again: a new finding
    assert later.id != first.id
    assert len(store.findings("a")) == 2


def test_unknown_finding(store: Store) -> None:
    with pytest.raises(NotFound, match="no drift finding 7 in a"):
        store.finding("a", 7)

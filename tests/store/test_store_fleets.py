"""Fleets: added once (idempotently), then only their state moves forward."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kiln.errors import NotFound, StoreError
from kiln.model import FleetState
from kiln.store import Store
from tests.store.factories import T0, make_fleet, raw_sql

S = FleetState


def test_round_trip(store: Store) -> None:
    fleet = make_fleet()
    store.add_fleet(fleet)
    assert store.get_fleet(fleet.id) == fleet


def test_add_is_idempotent_for_the_same_release(store: Store) -> None:
    fleet = make_fleet()
    store.add_fleet(fleet)
    store.set_fleet_state(fleet.id, S.ACTIVE)
    store.add_fleet(fleet)  # a resumed deployment adds it again
    assert store.get_fleet(fleet.id).state == S.ACTIVE
    assert len(store.fleets("hello", "dev")) == 1


def test_add_refuses_the_same_id_with_another_release(store: Store) -> None:
    fleet = make_fleet()
    store.add_fleet(fleet)
    other = make_fleet(release=2)
    clash = type(fleet)(**{**other.__dict__, "id": fleet.id})
    with pytest.raises(StoreError, match=r"already exists with release 1, not 2"):
        store.add_fleet(clash)


def test_unknown_fleet_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match=r"^fleet hello\.dev\.web\.r9 not found$"):
        store.get_fleet("hello.dev.web.r9")
    with pytest.raises(NotFound, match="fleet nope not found"):
        store.set_fleet_state("nope", S.ACTIVE)


def test_lifecycle_launch_serve_retain_retire(store: Store) -> None:
    fleet = make_fleet()
    store.add_fleet(fleet)
    assert store.set_fleet_state(fleet.id, S.ACTIVE).state == S.ACTIVE
    until = T0 + timedelta(minutes=10)
    retained = store.set_fleet_state(fleet.id, S.RETAINED, retain_until=until)
    assert (retained.state, retained.retain_until) == (S.RETAINED, until)
    assert store.get_fleet(fleet.id).retain_until == until
    retired = store.set_fleet_state(fleet.id, S.RETIRED)
    assert (retired.state, retired.retain_until) == (S.RETIRED, None)
    # nothing but the state (and retain_until) ever changed
    assert retired == type(fleet)(**{**fleet.__dict__, "state": S.RETIRED})


def test_retained_fleet_can_serve_again(store: Store) -> None:
    store.add_fleet(make_fleet(state=S.RETAINED))
    assert store.set_fleet_state("hello.dev.web.r1", S.ACTIVE).state == S.ACTIVE


def test_setting_the_same_state_again_is_allowed(store: Store) -> None:
    store.add_fleet(make_fleet())
    store.set_fleet_state("hello.dev.web.r1", S.FAILED)
    assert store.set_fleet_state("hello.dev.web.r1", S.FAILED).state == S.FAILED


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.RETIRED, S.ACTIVE),
        (S.RETIRED, S.LAUNCHING),
        (S.FAILED, S.ACTIVE),
        (S.FAILED, S.RETIRED),
        (S.ACTIVE, S.LAUNCHING),
        (S.RETAINED, S.LAUNCHING),
    ],
)
def test_forbidden_transitions(store: Store, start: FleetState, target: FleetState) -> None:
    store.add_fleet(make_fleet(state=start))
    with pytest.raises(StoreError, match=f"cannot go from {start} to {target}"):
        store.set_fleet_state("hello.dev.web.r1", target)
    assert store.get_fleet("hello.dev.web.r1").state == start


def test_fleets_by_created_at_filtered_by_state(store: Store) -> None:
    store.add_fleet(make_fleet("web", 2, created_at=T0 + timedelta(seconds=2)))
    store.add_fleet(make_fleet("web", 1, created_at=T0, state=S.ACTIVE))
    store.add_fleet(make_fleet("api", 1, created_at=T0 + timedelta(seconds=1), state=S.ACTIVE))
    store.add_fleet(make_fleet("web", 1, env="prod"))
    ids = [f.id for f in store.fleets("hello", "dev")]
    assert ids == ["hello.dev.web.r1", "hello.dev.api.r1", "hello.dev.web.r2"]
    active = [f.id for f in store.fleets("hello", "dev", states=[S.ACTIVE])]
    assert active == ["hello.dev.web.r1", "hello.dev.api.r1"]
    some = store.fleets("hello", "dev", states=iter([S.LAUNCHING, S.RETIRED]))
    assert [f.id for f in some] == ["hello.dev.web.r2"]
    assert store.fleets("hello", "dev", states=[]) == []


def test_states_are_stored_as_their_names(store: Store, db_path: Path) -> None:
    store.add_fleet(make_fleet())
    assert raw_sql(db_path, "SELECT state FROM fleets") == [("launching",)]

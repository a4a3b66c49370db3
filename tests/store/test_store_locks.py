"""The per-environment deploy lock and its lease."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from kiln.errors import LockHeld
from kiln.store import Store
from kiln.store.db import utcnow
from tests.store.factories import make_holder


def test_acquire_an_unlocked_environment(store: Store) -> None:
    assert store.lock_holder("hello", "dev") is None
    before = utcnow()
    store.acquire_lock("hello", "dev", make_holder(), lease_seconds=30)
    found = store.lock_holder("hello", "dev")
    assert found is not None
    holder, expires = found
    assert holder == make_holder()
    assert before + timedelta(seconds=30) <= expires <= utcnow() + timedelta(seconds=30)


def test_held_lock_refuses_another_holder_and_names_the_holder(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1", user="ann", pid=4242), 30)
    with pytest.raises(LockHeld) as info:
        store.acquire_lock("hello", "dev", make_holder("h2", user="bob"), 30)
    message = str(info.value)
    assert "'dev'" in message
    assert "ann@box pid 4242 (deploy, since 2025-03-01 12:00:00 UTC)" in message
    assert info.value.holder == make_holder("h1").describe()
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[0].id == "h1"


def test_locks_are_per_environment(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), 30)
    store.acquire_lock("hello", "prod", make_holder("h2"), 30)
    store.acquire_lock("other", "dev", make_holder("h3"), 30)
    holders = [store.lock_holder(a, e) for a, e in [("hello", "dev"), ("hello", "prod")]]
    assert [h[0].id for h in holders if h] == ["h1", "h2"]


def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), lease_seconds=0)  # crashed holder
    store.acquire_lock("hello", "dev", make_holder("h2"), lease_seconds=30)
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[0].id == "h2"
    assert store.renew_lock("hello", "dev", "h1", 30) is False


def test_steal_from_takes_a_live_lock_only_from_the_named_holder(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), 30)
    with pytest.raises(LockHeld):
        store.acquire_lock("hello", "dev", make_holder("h2"), 30, steal_from="someone-else")
    store.acquire_lock("hello", "dev", make_holder("h2"), 30, steal_from="h1")
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[0].id == "h2"


def test_reacquiring_our_own_lock_succeeds(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), 30)
    store.acquire_lock("hello", "dev", make_holder("h1"), 60)
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[1] > utcnow() + timedelta(seconds=45)


def test_renew_extends_our_lease(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), lease_seconds=1)
    assert store.renew_lock("hello", "dev", "h1", lease_seconds=120) is True
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[1] > utcnow() + timedelta(seconds=100)
    # a renewed lease is live again: nobody else gets in
    with pytest.raises(LockHeld):
        store.acquire_lock("hello", "dev", make_holder("h2"), 30)


def test_renew_fails_when_the_lock_is_not_ours(store: Store) -> None:
    assert store.renew_lock("hello", "dev", "h1", 30) is False  # nobody holds it
    store.acquire_lock("hello", "dev", make_holder("h2"), 30)
    assert store.renew_lock("hello", "dev", "h1", 30) is False


def test_release_frees_only_our_lock(store: Store) -> None:
    store.acquire_lock("hello", "dev", make_holder("h1"), 30)
    store.release_lock("hello", "dev", "h2")  # not ours: no-op
    assert store.lock_holder("hello", "dev") is not None
    store.release_lock("hello", "dev", "h1")
    assert store.lock_holder("hello", "dev") is None
    store.release_lock("hello", "dev", "h1")  # releasing twice is fine
    store.acquire_lock("hello", "dev", make_holder("h2"), 30)


def test_only_one_of_many_concurrent_acquirers_wins(store: Store) -> None:
    winners: list[str] = []
    losers: list[str] = []
    start = threading.Barrier(8)

    def contend(i: int) -> None:
        start.wait()
        try:
            store.acquire_lock("hello", "dev", make_holder(f"h{i}"), 30)
            winners.append(f"h{i}")
        except LockHeld:
            losers.append(f"h{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert len(losers) == 7
    found = store.lock_holder("hello", "dev")
    assert found is not None
    assert found[0].id == winners[0]

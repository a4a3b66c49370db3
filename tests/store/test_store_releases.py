"""Releases: numbering per environment with no gaps, also under concurrency; round-trips."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from kiln.errors import NotFound
from kiln.store import Store
from tests.store.factories import make_release


def test_numbers_start_at_one_and_ignore_the_given_number(store: Store) -> None:
    r = store.create_release(dataclasses.replace(make_release(), number=99))
    assert r.number == 1
    assert store.create_release(make_release()).number == 2


def test_numbers_are_per_app_and_env(store: Store) -> None:
    assert store.create_release(make_release(env="dev")).number == 1
    assert store.create_release(make_release(env="dev")).number == 2
    assert store.create_release(make_release(env="prod")).number == 1
    assert store.create_release(make_release(app="other", env="dev")).number == 1
    assert [r.number for r in store.list_releases("hello", "dev")] == [1, 2]
    assert [r.number for r in store.list_releases("hello", "prod")] == [1]


def test_round_trip_keeps_every_field(store: Store) -> None:
    given = make_release()
    created = store.create_release(given)
    assert created == dataclasses.replace(given, number=1)
    assert store.get_release("hello", "dev", 1) == created
    assert store.latest_release("hello", "dev") == created
    assert created.services["web"].command == given.services["web"].command
    assert created.services["web"].strategy == given.services["web"].strategy


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 1, 14, 0, 0, 5, tzinfo=plus2)
    r = store.create_release(dataclasses.replace(make_release(), created_at=local))
    assert r.created_at.tzinfo is UTC
    assert r.created_at == local
    assert r.created_at.hour == 12


def test_list_is_ascending_and_latest_is_the_highest(store: Store) -> None:
    for author in ("a", "b", "c"):
        store.create_release(make_release(author=author))
    releases = store.list_releases("hello", "dev")
    assert [(r.number, r.author) for r in releases] == [(1, "a"), (2, "b"), (3, "c")]
    latest = store.latest_release("hello", "dev")
    assert latest is not None
    assert latest.author == "c"


def test_unknown_environment_has_no_releases(store: Store) -> None:
    assert store.latest_release("hello", "nowhere") is None
    assert store.list_releases("hello", "nowhere") == []


def test_not_found_names_the_release_and_the_latest(store: Store) -> None:
    for _ in range(5):
        store.create_release(make_release())
    with pytest.raises(NotFound) as info:
        store.get_release("hello", "dev", 7)
    assert str(info.value) == "release 7 of hello/dev not found (latest is 5)"
    with pytest.raises(NotFound, match=r"^release 1 of hello/qa not found \(it has no releases\)$"):
        store.get_release("hello", "qa", 1)


def test_current_release(store: Store) -> None:
    assert store.current_release("hello", "dev") is None
    store.create_release(make_release())
    store.create_release(make_release())
    store.set_current_release("hello", "dev", 2)
    assert store.current_release("hello", "dev") == 2
    store.set_current_release("hello", "dev", 1)
    assert store.current_release("hello", "dev") == 1
    assert store.current_release("hello", "prod") is None


def test_current_release_must_exist(store: Store) -> None:
    store.create_release(make_release())
    with pytest.raises(NotFound, match="release 3 of hello/dev not found"):
        store.set_current_release("hello", "dev", 3)
    assert store.current_release("hello", "dev") is None


def test_threads_sharing_a_store_get_distinct_consecutive_numbers(store: Store) -> None:
    numbers: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            n = store.create_release(make_release()).number
            with lock:
                numbers.append(n)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(1, 41))


WORKER = """
import sys
from tests.store.factories import make_release
from kiln.store import Store

store = Store.open(sys.argv[1])
for _ in range(int(sys.argv[2])):
    print(store.create_release(make_release()).number, flush=True)
store.close()
"""


def test_processes_creating_releases_at_once_get_distinct_consecutive_numbers(
    db_path: Path,
) -> None:
    # Each process migrates the brand-new file too: that must be serialised as well.
    root = str(Path(__file__).parents[2])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db_path), "15"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": root},
        )
        for _ in range(4)
    ]
    numbers: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        numbers += [int(line) for line in out.split()]
    assert sorted(numbers) == list(range(1, 61))
    with Store.open(db_path) as s:
        assert [r.number for r in s.list_releases("hello", "dev")] == list(range(1, 61))

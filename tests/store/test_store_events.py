"""The audit log: appends chain, verify proves it, and every kind of tampering is caught."""

from __future__ import annotations

import json
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.exc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.errors import AuditError, StoreError
from kiln.model import Secret
from kiln.model.digest import canonical_json, sha256_hex
from kiln.store import Store
from kiln.store.events import GENESIS, compute_hash
from tests.store.factories import raw_sql

ACTIONS = ["release.created", "deploy.started", "fleet.launched", "deploy.succeeded"]


def fill(store: Store, n: int = 8) -> None:
    for i in range(1, n + 1):
        store.append_event(
            actor="ann@box",
            action=f"{ACTIONS[i % len(ACTIONS)]}",
            app="hello",
            env="dev" if i % 2 else "prod",
            reason=f"reason {i}",
            detail={"i": i, "nested": {"list": [i, "x", None, True, 1.5]}},
        )


def action_of(db_path: Path, seq: int) -> str:
    [(action,)] = raw_sql(db_path, "SELECT action FROM events WHERE seq = ?", (seq,))
    return str(action)


def test_append_returns_the_chained_event(store: Store) -> None:
    e1 = store.append_event(actor="ann", action="deploy.started", app="hello", env="dev")
    e2 = store.append_event(
        actor="bob",
        action="deploy.failed",
        app="hello",
        env="dev",
        reason="health",
        detail={"a": 1},
    )
    assert (e1.seq, e1.prev_hash, e1.reason, e1.detail) == (1, GENESIS, "", {})
    assert (e2.seq, e2.prev_hash, e2.detail) == (2, e1.hash, {"a": 1})
    assert e1.at.tzinfo is not None
    content = {
        "seq": 2,
        "at": e2.at.isoformat(),
        "actor": "bob",
        "action": "deploy.failed",
        "app": "hello",
        "env": "dev",
        "reason": "health",
        "detail": {"a": 1},
    }
    assert e2.hash == sha256_hex(e1.hash.encode() + canonical_json(content))
    assert store.events() == [e1, e2]


def test_events_filter_and_limit(store: Store) -> None:
    fill(store, 8)
    assert [e.seq for e in store.events()] == list(range(1, 9))
    assert [e.seq for e in store.events(env="dev")] == [1, 3, 5, 7]
    assert [e.seq for e in store.events(app="hello", env="prod", limit=2)] == [6, 8]
    assert [e.seq for e in store.events(limit=3)] == [6, 7, 8]
    assert store.events(app="other") == []


def test_empty_log_verifies(store: Store) -> None:
    assert store.verify_events() == 0


def test_intact_log_verifies(store: Store, db_path: Path) -> None:
    fill(store, 8)
    assert store.verify_events() == 8
    with Store.open(db_path) as again:  # and from another process's point of view
        assert again.verify_events() == 8


def test_detail_is_normalised_to_what_reads_return(store: Store) -> None:
    e = store.append_event(
        actor="a", action="x", app="hello", env="dev", detail={"t": (1, 2), "b": {"z": 1, "a": 2}}
    )
    assert e.detail == {"t": [1, 2], "b": {"z": 1, "a": 2}}
    assert store.events() == [e]
    assert store.verify_events() == 1


def test_a_secret_never_reaches_the_log(store: Store, db_path: Path) -> None:
    secret = Secret("DB_PASSWORD", "hunter2")
    e = store.append_event(
        actor="a", action="x", app="hello", env="dev", detail={"s": secret, "l": [secret]}
    )
    assert e.detail == {"s": "<secret DB_PASSWORD>", "l": ["<secret DB_PASSWORD>"]}
    assert "hunter2" not in json.dumps(raw_sql(db_path, "SELECT * FROM events"))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", "2020-01-01 00:00:00.000000"),
        ("at", "not a time"),
        ("actor", "mallory@box"),
        ("action", "nothing.happened"),
        ("app", "other"),
        ("env", "prod2"),
        ("reason", "it was fine"),
        ("detail", '{"i":5,"nested":{}}'),
        ("detail", "not json"),
        ("hash", "f" * 64),
    ],
)
def test_an_edited_column_is_caught_naming_the_event(
    store: Store, db_path: Path, column: str, value: str
) -> None:
    fill(store, 8)
    action = action_of(db_path, 5)
    raw_sql(db_path, f"UPDATE events SET {column} = ? WHERE seq = 5", (value,))
    with pytest.raises(AuditError, match=r"^event 5 \(") as info:
        store.verify_events()
    shown = value if column == "action" else action
    assert str(info.value).startswith(f"event 5 ({shown}) was altered: hash mismatch")


def test_an_edited_prev_hash_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 8)
    raw_sql(db_path, "UPDATE events SET prev_hash = ? WHERE seq = 5", ("0" * 64,))
    with pytest.raises(AuditError, match=r"^event 5 \(.*\) does not follow event 4"):
        store.verify_events()


def test_a_deleted_middle_event_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 8)
    raw_sql(db_path, "DELETE FROM events WHERE seq = 4")
    with pytest.raises(AuditError, match=r"^event 4 is missing: the log jumps from event 3"):
        store.verify_events()


def test_a_deleted_first_event_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 3)
    raw_sql(db_path, "DELETE FROM events WHERE seq = 1")
    with pytest.raises(AuditError, match=r"^event 1 is missing"):
        store.verify_events()


def test_a_deletion_hidden_by_renumbering_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 8)
    raw_sql(db_path, "DELETE FROM events WHERE seq = 4")
    for seq in range(5, 9):
        raw_sql(db_path, "UPDATE events SET seq = ? WHERE seq = ?", (seq - 1, seq))
    with pytest.raises(AuditError, match=r"^event 4 \(.*\) does not follow event 3"):
        store.verify_events()


def test_a_deleted_last_event_is_caught_by_the_anchor(store: Store, db_path: Path) -> None:
    fill(store, 8)
    raw_sql(db_path, "DELETE FROM events WHERE seq = 8")
    with pytest.raises(AuditError, match=r"^event 8 is missing: the log ends at event 7"):
        store.verify_events()


def test_a_truncated_tail_is_caught_by_the_anchor(store: Store, db_path: Path) -> None:
    fill(store, 8)
    raw_sql(db_path, "DELETE FROM events WHERE seq > 5")
    with pytest.raises(AuditError, match=r"^event 6 is missing"):
        store.verify_events()


def test_everything_deleted_is_caught_by_the_anchor(store: Store, db_path: Path) -> None:
    fill(store, 3)
    raw_sql(db_path, "DELETE FROM events")
    with pytest.raises(AuditError, match=r"^event 1 is missing"):
        store.verify_events()


def test_swapped_events_are_caught(store: Store, db_path: Path) -> None:
    fill(store, 8)
    cols = "at, actor, action, app, env, reason, detail, prev_hash, hash"
    [row3] = raw_sql(db_path, f"SELECT {cols} FROM events WHERE seq = 3")
    [row4] = raw_sql(db_path, f"SELECT {cols} FROM events WHERE seq = 4")
    assignments = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    raw_sql(db_path, "UPDATE events SET seq = -1 WHERE seq = 3")
    raw_sql(db_path, f"UPDATE events SET {assignments} WHERE seq = 4", row3)
    raw_sql(db_path, f"UPDATE events SET seq = 3, {assignments} WHERE seq = -1", row4)
    with pytest.raises(AuditError, match=r"^event 3 \("):
        store.verify_events()


def test_swapped_content_keeping_the_hashes_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 8)
    cols = "actor, action, env, reason, detail"
    [row3] = raw_sql(db_path, f"SELECT {cols} FROM events WHERE seq = 3")
    [row4] = raw_sql(db_path, f"SELECT {cols} FROM events WHERE seq = 4")
    assignments = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    raw_sql(db_path, f"UPDATE events SET {assignments} WHERE seq = 3", row4)
    raw_sql(db_path, f"UPDATE events SET {assignments} WHERE seq = 4", row3)
    with pytest.raises(AuditError, match=r"^event 3 \(.*\) was altered"):
        store.verify_events()


def _forge(db_path: Path, seq: int, prev_hash: str, **fields: Any) -> str:
    """Write an event row whose hash is right, as someone who read this code would."""
    at = "2025-03-01 12:00:00.000000"
    content: dict[str, Any] = {
        "actor": "mallory",
        "action": "forged",
        "app": "hello",
        "env": "dev",
        "reason": "",
        **fields,
    }
    digest = compute_hash(
        prev_hash=prev_hash,
        seq=seq,
        at=datetime.fromisoformat(at).replace(tzinfo=UTC),
        detail={},
        **content,
    )
    raw_sql(
        db_path,
        "INSERT OR REPLACE INTO events (seq, at, actor, action, app, env, reason, detail,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)",
        (seq, at, *content.values(), prev_hash, digest),
    )
    return digest


def test_a_rewritten_last_event_with_a_valid_hash_is_caught_by_the_anchor(
    store: Store, db_path: Path
) -> None:
    fill(store, 4)
    prev = store.events()[2].hash
    _forge(db_path, 4, prev)
    with pytest.raises(AuditError, match=r"^event 4 \(forged\) was altered: .*audit anchor"):
        store.verify_events()


def test_an_event_added_behind_kiln_s_back_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 4)
    _forge(db_path, 5, store.events()[-1].hash)
    with pytest.raises(AuditError, match=r"^event 5 \(forged\) was not appended by kiln"):
        store.verify_events()


def test_a_missing_anchor_is_caught(store: Store, db_path: Path) -> None:
    fill(store, 2)
    anchor = db_path.with_name(db_path.name + ".audit.head")
    assert json.loads(anchor.read_text()) == {"seq": 2, "hash": store.events()[-1].hash}
    anchor.unlink()
    with pytest.raises(AuditError, match=r"audit anchor .* is missing"):
        store.verify_events()


def test_concurrent_appends_keep_one_unbroken_chain(db_path: Path) -> None:
    stores = [Store.open(db_path) for _ in range(4)]

    def work(s: Store, who: int) -> None:
        for i in range(15):
            s.append_event(actor=f"t{who}", action="x", app="hello", env="dev", detail={"i": i})

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].verify_events() == 60
    assert [e.seq for e in stores[1].events()] == list(range(1, 61))
    for s in stores:
        s.close()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
EVENT = st.fixed_dictionaries(
    {
        "actor": st.text(max_size=30),
        "action": st.text(min_size=1, max_size=30),
        "app": st.text(max_size=20),
        "env": st.text(max_size=20),
        "reason": st.text(max_size=60),
        "detail": st.dictionaries(st.text(max_size=10), JSON, max_size=5) | st.none(),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, max_size=12))
def test_any_sequence_of_appended_events_verifies(events: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "kiln.db") as store:
        appended = [store.append_event(**e) for e in events]
        assert store.verify_events() == len(events)
        assert store.events() == appended
        for given_event, stored in zip(events, appended, strict=True):
            assert stored.detail == (given_event["detail"] or {})


def _fail_next_commit(store: Store) -> None:
    """Make the next commit fail, after the append wrote its row and its anchor."""

    def fail(_conn: Any) -> None:
        sqlalchemy.event.remove(store._db.engine, "commit", fail)
        raise sqlalchemy.exc.OperationalError("COMMIT", None, OSError("disk on fire"))

    sqlalchemy.event.listen(store._db.engine, "commit", fail)


def test_a_rolled_back_append_takes_its_anchor_back(store: Store, db_path: Path) -> None:
    fill(store, 3)
    _fail_next_commit(store)
    with pytest.raises(StoreError, match="disk on fire"):
        store.append_event(actor="a", action="x", app="hello", env="dev")
    assert [e.seq for e in store.events()] == [1, 2, 3]
    assert store.verify_events() == 3
    assert store.append_event(actor="a", action="x", app="hello", env="dev").seq == 4
    assert store.verify_events() == 4


def test_a_rolled_back_first_append_leaves_no_anchor(store: Store, db_path: Path) -> None:
    _fail_next_commit(store)
    with pytest.raises(StoreError, match="disk on fire"):
        store.append_event(actor="a", action="x", app="hello", env="dev")
    assert not db_path.with_name(db_path.name + ".audit.head").exists()
    assert store.verify_events() == 0

"""Model basics: secrets redact themselves, digests are canonical, the codec round-trips."""

from __future__ import annotations

import pytest

from kiln.errors import SecretMissing
from kiln.model import Secret, canonical_digest, from_json, to_json
from kiln.model.steps import Destroy, Launch, Retain, Retire, SetRoutes, Step, WaitHealthy


def test_secret_never_prints_its_value() -> None:
    s = Secret("API_TOKEN", "hunter2")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in f"{s} {s!r} {[s]} { ({'k': s}) }"
    assert s.reveal() == "hunter2"
    key = b"k" * 32
    assert s.digest(key) != Secret("OTHER", "hunter2").digest(key)  # the name is mixed in
    assert s.digest(key) == Secret("API_TOKEN", "hunter2").digest(key)
    assert s.digest(key) != s.digest(b"x" * 32)  # keyed: no offline guessing without it
    assert "hunter2" not in s.digest(key)


def test_canonical_digest_ignores_key_order() -> None:
    assert canonical_digest({"a": 1, "b": [1, 2]}) == canonical_digest({"b": [1, 2], "a": 1})
    assert canonical_digest({"a": 1}) != canonical_digest({"a": 2})


@pytest.mark.parametrize(
    "step",
    [
        Launch(fleets=("f",)),
        WaitHealthy(fleets=("f",)),
        SetRoutes(weights={"web": {"f": 100}}),
        Retain(fleets=("f",), seconds=60),
        Retire(fleets=("f",)),
        Destroy(fleets=("f",)),
    ],
)
def test_steps_round_trip(step: object) -> None:
    assert from_json(Step, to_json(step, Step)) == step


def test_secret_resolution_pins_versions() -> None:
    from kiln.engine.secrets import resolve_secrets, secrets_for_launch

    key = b"k" * 32
    pinned = {"TOKEN": Secret("TOKEN", "v1").digest(key)}
    assert secrets_for_launch(pinned, {"TOKEN": "v1"}, 3, key)["TOKEN"].reveal() == "v1"
    with pytest.raises(SecretMissing, match="TOKEN changed since release 3"):
        secrets_for_launch(pinned, {"TOKEN": "v2"}, 3, key)
    with pytest.raises(SecretMissing, match="TOKEN not set") as info:
        resolve_secrets(["TOKEN"], {})
    assert "v1" not in str(info.value)

"""Content digests: one canonical encoding, so equal content always hashes equal."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_digest(obj: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``obj`` (key order never matters)."""
    return "sha256:" + sha256_hex(canonical_json(obj))

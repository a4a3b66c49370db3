"""JSON encoding of model objects, for the store and the router's admin API.

One way to turn any model dataclass into JSON-safe data and back, so callers
never hand-write ``to_dict`` methods that drift apart from the fields.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


@cache
def _adapter(cls: Any) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def to_json(obj: Any, cls: Any = None) -> Any:
    """Return JSON-safe data (dicts, lists, str, numbers) for a model object."""
    target: Any = cls if cls is not None else type(obj)
    return _adapter(target).dump_python(obj, mode="json")


def from_json(cls: type[T] | Any, data: Any) -> T:
    """Rebuild a model object (or a union such as ``Step``) from ``to_json`` output."""
    target: Any = cls
    result: T = _adapter(target).validate_python(data)
    return result

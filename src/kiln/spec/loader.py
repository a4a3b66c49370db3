"""Load ``kiln.yaml`` with line numbers, so every error names file, line and field."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from kiln.errors import SpecError
from kiln.spec.schema import Spec


def load_spec(path: Path) -> Spec:
    name = _display_name(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", file=name) from e
    return parse_spec(text, filename=name)


def _display_name(path: Path) -> str:
    """``kiln.yaml`` or ``deploy/kiln.yaml`` when under the working directory, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def parse_spec(text: str, *, filename: str = "kiln.yaml") -> Spec:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(io.StringIO(text))
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise SpecError(f"invalid YAML: {e.problem}", file=filename, line=line) from e
    if not isinstance(tree, CommentedMap):
        raise SpecError("must be a mapping with app, services, environments", file=filename, line=1)
    try:
        spec = Spec.model_validate(_plain(tree))
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        raise SpecError(
            _message(first), file=filename, line=_line(tree, loc), field=_dotted(loc)
        ) from e
    _check_references(spec, tree, filename)
    return spec


def _check_references(spec: Spec, tree: CommentedMap, filename: str) -> None:
    listeners: dict[str, tuple[str, ...]] = {}
    for env_name, env in spec.environments.items():
        for service, listen in env.routes.items():
            loc = ("environments", env_name, "routes", service)
            if listen in listeners:
                other = ".".join(listeners[listen])
                raise SpecError(
                    f"{listen} is already the route of {other}",
                    file=filename,
                    line=_line(tree, loc),
                    field=_dotted(loc),
                )
            listeners[listen] = loc
    for name in spec.services:
        for env_name, env in spec.environments.items():
            svc = spec.service(env_name, name)
            if env.pin == "strict" and svc.image is not None and "@sha256:" not in svc.image:
                where = ("services", name, "image")
                raise SpecError(
                    f"environment {env_name} has pin: strict; pin the image by digest "
                    f"({_repository(svc.image)}@sha256:...), not a tag",
                    file=filename,
                    line=_line(tree, where),
                    field=_dotted(where),
                )
            clash = sorted(set(svc.secrets) & set(svc.env))
            if clash:
                where = ("services", name, "secrets")
                raise SpecError(
                    f"{', '.join(clash)} is both a secret and an env variable",
                    file=filename,
                    line=_line(tree, where),
                    field=_dotted(where),
                )
    for env_name, env in spec.environments.items():
        _check_one_rollout(spec, env_name, tree, filename)
        source = env.requires.promoted_from if env.requires else None
        if source is not None and (source not in spec.environments or source == env_name):
            loc = ("environments", env_name, "requires", "promoted_from")
            raise SpecError(
                f"{source!r} is not another environment of this spec",
                file=filename,
                line=_line(tree, loc),
                field=_dotted(loc),
            )
        for kind, names in (("routes", env.routes), ("services", env.services)):
            for service in names:
                if service not in spec.services:
                    loc = ("environments", env_name, kind, service)
                    known = ", ".join(sorted(spec.services))
                    raise SpecError(
                        f"unknown service {service!r} (services: {known})",
                        file=filename,
                        line=_line(tree, loc),
                        field=_dotted(loc),
                    )


def _check_one_rollout(spec: Spec, env: str, tree: CommentedMap, filename: str) -> None:
    """One deployment moves every routed service's traffic by one step sequence."""
    routed = sorted(s for s in spec.environments[env].routes if s in spec.services)
    keyed = {
        s: spec.service(env, s).strategy.model_dump(exclude={"retain_previous", "drain_timeout"})
        for s in routed
    }
    for name in routed[1:]:
        if keyed[name] != keyed[routed[0]]:
            where = ("services", name, "strategy")
            raise SpecError(
                f"routed services {routed[0]} and {name} roll out differently in {env}; "
                "one deployment moves all routed services by one strategy "
                "(only retain_previous and drain_timeout may differ)",
                file=filename,
                line=_line(tree, where),
                field=_dotted(where),
            )


def _repository(ref: str) -> str:
    """``registry:5000/team/app:1.2`` -> ``registry:5000/team/app``."""
    name = ref.split("@", 1)[0]
    head, sep, tag = name.rpartition(":")
    return head if sep and "/" not in tag else name


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _line(tree: CommentedMap, loc: Sequence[int | str]) -> int:
    """The line of the deepest node of ``loc`` that exists in the YAML tree (1-based)."""
    line = 0
    node: Any = tree
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
            line = node.lc.item(key)[0]
        else:
            break
        node = node[key]
    return line + 1


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        else:
            out += f".{part}"
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(error["msg"])
    # pydantic prefixes custom errors; the user needs only the sentence.
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind == "string_pattern_mismatch":
        return f"{msg} (got {error['input']!r})"
    return msg

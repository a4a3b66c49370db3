"""``kiln init``: copy the starter spec and app into an empty directory."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from kiln.errors import KilnError

STARTER = ("kiln.yaml", "app/server.py", "app/VERSION")


def write_starter(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    clashes = [name for name in STARTER if (directory / name).exists()]
    if clashes or (directory / "kiln.yaml").exists():
        raise KilnError(
            f"{directory}: {', '.join(clashes)} already exist(s); "
            "kiln init only writes into a directory without them"
        )
    source = files("kiln.starter")
    written = []
    for name in STARTER:
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.joinpath(name).read_bytes())
        written.append(target)
    return written

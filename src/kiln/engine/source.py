"""Which commit a spec was deployed from: asks git, read-only."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceInfo:
    commit: str | None  # None when the spec is not in a git work tree
    dirty: bool


def source_info(spec_dir: Path) -> SourceInfo:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(spec_dir), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return SourceInfo(commit=None, dirty=False)
    status = git("status", "--porcelain", "--untracked-files=normal", "--", ".")
    return SourceInfo(commit=commit, dirty=bool(status))

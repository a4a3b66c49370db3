"""The read-only artifact sandbox: run an instance in its own mount namespace.

As root, with ``unshare`` available, the command starts as::

    unshare --mount --propagation private -- /bin/sh -c SCRIPT kiln-sandbox DIR MOUNT CMD...

where SCRIPT bind-mounts DIR onto itself, remounts that bind read-only, ``cd``s
into it (so the cwd is the read-only mount, not the writable tree beneath it)
and ``exec``s CMD. ``unshare`` and ``sh`` both exec, never fork, so the
instance keeps the pid kiln recorded, and a write into the artifact fails with
EROFS even as root. The mount lives only in the instance's namespace; the host
tree is untouched.

This module must never mount anything in kiln's own namespace, and must not
claim the sandbox works without having seen a write fail (``detect`` probes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# $1 = artifact dir, $2 = path of mount(8), the rest = the instance's command.
# ``cd`` makes sh export PWD/OLDPWD; unset them so the instance's environment
# is exactly what kiln built, sandbox or not.
_SCRIPT = (
    'D=$1; M=$2; shift 2; "$M" --bind "$D" "$D" && "$M" -o remount,ro,bind "$D" "$D"'
    ' && cd "$D" && unset PWD OLDPWD && exec "$@"'
)
# Exits 0 only if creating a file in the (supposedly read-only) cwd failed.
_PROBE = "if (echo x > probe) 2>/dev/null; then exit 3; fi; exit 0"


@dataclass(frozen=True)
class Sandbox:
    unshare: str
    mount: str
    sh: str = "/bin/sh"

    def wrap(self, argv: Sequence[str], artifact_dir: Path) -> list[str]:
        """The argv that runs ``argv`` with ``artifact_dir`` mounted read-only."""
        return [
            self.unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            self.sh,
            "-c",
            _SCRIPT,
            "kiln-sandbox",
            str(artifact_dir),
            self.mount,
            *argv,
        ]


def detect() -> Sandbox | None:
    """A working sandbox, or None (not root, no unshare/mount, or the probe failed)."""
    if os.geteuid() != 0:
        return None
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None or not os.access("/bin/sh", os.X_OK):
        return None
    sandbox = Sandbox(unshare=unshare, mount=mount)
    # Root is not enough (a container may deny CAP_SYS_ADMIN or seccomp unshare),
    # so try the real thing once on a scratch dir and check a write fails.
    with tempfile.TemporaryDirectory(prefix="kiln-sandbox-probe-") as d:
        argv = sandbox.wrap([sandbox.sh, "-c", _PROBE], Path(d))
        try:
            rc = subprocess.run(
                argv,
                cwd=d,
                env={"PATH": os.defpath},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            ).returncode
        except (OSError, subprocess.SubprocessError):
            return None
        if rc != 0 or (Path(d) / "probe").exists():
            return None
    return sandbox

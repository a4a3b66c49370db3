"""``make demo``: deploy hello v1 on the local provider, then v2 under steady traffic.

Prints how many requests failed during the replacement (it must be 0) and
leaves the app serving at its route with the next commands to try.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from kiln.testing.load import Load

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".demo" / "hello"
KILN = str(Path(sys.executable).parent / "kiln")
URL = "http://127.0.0.1:8080"
ENV = {**os.environ, "API_TOKEN": "demo-token", "KILN_ACTOR": "demo@kiln"}
ENV.pop("KILN_STATE", None)


def kiln(*args: str) -> None:
    print(f"\n$ kiln {' '.join(args)}", flush=True)
    subprocess.run([KILN, *args], cwd=WORK, env=ENV, check=True)


def main() -> int:
    if (WORK / "kiln.yaml").exists():  # a previous demo: stop it, start clean
        subprocess.run(
            [KILN, "down", "--volumes"], cwd=WORK, env=ENV, check=False, capture_output=True
        )
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from pathlib import Path; "
                "from kiln.router.process import stop_router; "
                f"stop_router(Path({str(WORK / '.kiln')!r}))",
            ],
            check=False,
        )
        shutil.rmtree(WORK)
    shutil.copytree(ROOT / "examples" / "hello", WORK, ignore=shutil.ignore_patterns(".kiln"))
    # The demo is snappier with faster health checks; kiln.yaml is otherwise the example's.
    spec = WORK / "kiln.yaml"
    spec.write_text(spec.read_text().replace("interval: 1s", "interval: 0.25s"))

    kiln("validate")
    kiln("deploy", "-m", "first release")
    with urllib.request.urlopen(URL, timeout=5) as r:
        print(f"\n{URL} says: {r.read().decode().splitlines()[0]}")

    (WORK / "app" / "VERSION").write_text("v2\n")
    print("\nv2 baked from changed code; deploying it under 20 concurrent keep-alive clients")
    with Load(URL, clients=20, max_seconds=120) as load:
        kiln("deploy", "-m", "ship v2")
        result = load.stop()
    served = ", ".join(f"{body!r}: {n}" for body, n in result.bodies.most_common())
    print(
        f"\nrequests during the deploy: {result.ok + result.failed} "
        f"({served}); failed: {result.failed}"
    )
    kiln("status")
    kiln("history")
    kiln("audit", "verify")
    print(f"""
hello is serving at {URL} (release 2); the v1 fleet is kept warm for instant rollback.
Try, from {WORK.relative_to(ROOT)}:
  ../../.venv/bin/kiln status
  ../../.venv/bin/kiln rollback            # instant: back to the warm v1 fleet
  ../../.venv/bin/kiln history
  ../../.venv/bin/kiln logs web
  ../../.venv/bin/kiln audit log
  ../../.venv/bin/kiln down                # stop everything (volumes kept)
""")
    if result.failed:
        print(f"FAILED requests: {result.failed}: {result.errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: run every suite and print one table (ratios against same-run baselines).

``python -m bench docker router`` runs only the suites named.
"""

from __future__ import annotations

import sys

from bench import analysis, deploy, docker, drift, router
from bench.common import Result, table

SUITES = {
    "analysis": analysis,
    "deploy": deploy,
    "docker": docker,
    "drift": drift,
    "router": router,
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SUITES]
    if unknown:
        print(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    results: list[Result] = []
    for name in argv or list(SUITES):
        print(f"running {name} …", file=sys.stderr, flush=True)
        results += SUITES[name].run()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

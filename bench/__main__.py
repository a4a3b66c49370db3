"""``make bench``: run every suite and print one table (ratios against same-run baselines)."""

from __future__ import annotations

import sys

from bench import deploy, docker, router
from bench.common import Result, table


def main() -> int:
    results: list[Result] = []
    for suite in (deploy, docker, router):
        print(f"running {suite.__name__} …", file=sys.stderr, flush=True)
        results += suite.run()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

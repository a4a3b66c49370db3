"""``python -m kiln.router run --state DIR [--no-metrics]``: the router process's command line.

Only parses arguments and calls ``serve``; it must never hold router logic.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kiln.errors import RouterError
from kiln.router.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.router")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the route table of a state directory")
    run.add_argument("--state", type=Path, required=True, help="kiln state directory")
    run.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="do not count per-fleet metrics (for measuring their cost; kiln never does this)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        serve(args.state, metrics=args.metrics)
    except RouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

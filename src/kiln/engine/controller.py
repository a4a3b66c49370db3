"""The controller loop (`kiln serve`): every environment's drift pass, on its interval.

Each pass tidies (resumes a deployment a dead kiln left, retires expired
fleets), detects drift and enforces it. A pass never waits for a deploy that
holds the lock: it is skipped and tried again next interval. Nothing the
controller holds is needed to serve traffic (the router is its own process),
so killing it interrupts nothing, and a restarted one simply looks again.
"""

from __future__ import annotations

import threading
import time
import traceback

from kiln.engine.context import Context
from kiln.engine.drift import reconcile
from kiln.errors import KilnError


def serve(ctx: Context, stop: threading.Event, *, passes: int | None = None) -> int:
    """Run until ``stop`` is set (or ``passes`` rounds are done); returns rounds run."""
    envs = sorted(ctx.spec.environments)
    due = dict.fromkeys(envs, 0.0)
    rounds = 0
    ctx.reporter.info(f"controller for {ctx.app} ({', '.join(envs)}) in {ctx.state_dir}")
    while not stop.is_set() and (passes is None or rounds < passes):
        now = time.monotonic()
        for env in envs:
            if now >= due[env]:
                due[env] = now + ctx.spec.environments[env].drift.interval
                _pass(ctx, env)
        rounds += 1
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))
    return rounds


def _pass(ctx: Context, env: str) -> None:
    try:
        result = reconcile(ctx, env, wait=False)
    except KilnError as e:  # an unreachable engine, say: the next pass tries again
        ctx.reporter.info(f"{env}: {e}")
        return
    except Exception:  # a bug must not stop the controller of a running system
        ctx.reporter.info(f"{env}: pass failed with a bug:\n{traceback.format_exc()}")
        return
    if result.skipped:
        ctx.reporter.info(f"{env}: {result.skipped}")
    for record in result.new:
        ctx.reporter.info(f"{env}: drift found: {record.finding.summary}")
    for action in result.actions:
        ctx.reporter.info(f"{env}: {action}")

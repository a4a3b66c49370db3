"""The health gate: every instance of a fleet passes ``healthy_after`` checks in a row."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kiln.errors import HealthCheckFailed
from kiln.model import HealthCheck, Instance
from kiln.providers.probe import Prober


@dataclass(frozen=True)
class Gate:
    fleet: str
    replicas: int
    check: HealthCheck
    healthy_after: int  # may be lower than check.healthy_after for a warm fleet


def wait_healthy(
    gates: list[Gate],
    observe: Callable[[], list[Instance]],
    *,
    on_progress: Callable[[str], None],
    last_logs: Callable[[Instance], str],
) -> None:
    """Return when every gate passes; raise HealthCheckFailed naming the first that cannot."""
    if not gates:
        return
    streak: dict[str, int] = {}
    last_error: dict[str, str] = {}
    started = time.monotonic()
    interval = min(g.check.interval for g in gates)
    by_fleet: Mapping[str, Gate] = {g.fleet: g for g in gates}
    with Prober(timeout=max(g.check.timeout for g in gates)) as prober:
        while True:
            instances = [i for i in observe() if i.fleet in by_fleet]
            for inst in instances:
                if not inst.alive:
                    raise HealthCheckFailed(
                        f"instance {inst.id} exited before it was healthy{last_logs(inst)}"
                    )
            pending = [
                i for i in instances if streak.get(i.id, 0) < by_fleet[i.fleet].healthy_after
            ]
            results = prober.probe_all((i.address, by_fleet[i.fleet].check.path) for i in pending)
            for inst, error in zip(pending, results, strict=True):
                if error is None:
                    streak[inst.id] = streak.get(inst.id, 0) + 1
                else:
                    streak[inst.id] = 0
                    last_error[inst.id] = error
            ready = {
                f: sum(
                    1 for i in instances if i.fleet == f and streak.get(i.id, 0) >= g.healthy_after
                )
                for f, g in by_fleet.items()
            }
            on_progress(
                "health: " + ", ".join(f"{f} {ready[f]}/{g.replicas}" for f, g in by_fleet.items())
            )
            if all(ready[f] >= g.replicas for f, g in by_fleet.items()):
                return
            elapsed = time.monotonic() - started
            for fleet, gate in by_fleet.items():
                if ready[fleet] < gate.replicas and elapsed > gate.check.start_timeout:
                    errors = sorted({e for i, e in last_error.items() if i.startswith(fleet + ".")})
                    raise HealthCheckFailed(
                        f"fleet {fleet}: {ready[fleet]}/{gate.replicas} instances healthy after "
                        f"{gate.check.start_timeout:g}s (start_timeout)"
                        + (f"; last error: {errors[-1]}" if errors else "")
                    )
            time.sleep(interval)

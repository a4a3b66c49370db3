"""Finding instances by their labels in ``/proc/*/environ``, records or not.

This is how a controller that died between spawning a process and recording it
adopts the process when it comes back, and how a hand-started process that
carries kiln's labels becomes visible to drift detection. Only processes with
this state dir's ``KILN_STATE_ID`` count, so two state dirs never see each
other's instances. Read-only: this module never signals or writes anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kiln.model import Instance
from kiln.providers.local import procfs
from kiln.providers.local.environment import labels_from_env


@dataclass(frozen=True)
class Found:
    stat: procfs.ProcStat
    env: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.stat.pid}:{self.stat.start_time}"

    def rank(self) -> tuple[bool, int, int]:
        # Workers an instance forks inherit its labels; the instance itself
        # leads its session (kiln starts it with setsid), or else started first.
        st = self.stat
        return (st.pid == st.sid, -st.start_time, -st.pid)


def scan(state_id: str, app: str, env: str) -> dict[str, Found]:
    """Live processes labelled with this state id, app and env: instance key -> process."""
    needle = f"KILN_STATE_ID={state_id}".encode()
    want = {"KILN_STATE_ID": state_id, "KILN_APP": app, "KILN_ENV": env}
    found: dict[str, Found] = {}
    for pid in procfs.pids():
        if pid == os.getpid() or not procfs.environ_contains(pid, needle):
            continue
        penv, st = procfs.read_environ(pid), procfs.read_stat(pid)
        if penv is None or st is None or not st.running:
            continue
        if any(penv.get(k) != v for k, v in want.items()):
            continue
        # A hand-started process may carry labels but no instance id: one per session.
        key = penv.get("KILN_INSTANCE") or f"unlabelled-{st.sid}"
        candidate = Found(st, penv)
        best = found.get(key)
        if best is None or candidate.rank() > best.rank():
            found[key] = candidate
    return found


def adopt(key: str, found: Found, *, app: str, state_id: str) -> Instance:
    """An Instance for a labelled process kiln has no record of."""
    penv = found.env
    labels = labels_from_env(penv)
    labels["state_id"] = state_id
    try:
        release = int(penv.get("KILN_RELEASE", "0"))
    except ValueError:
        release = 0
    port = penv.get("PORT", "")
    return Instance(
        id=key,
        app=app,
        env=penv["KILN_ENV"],
        service=penv.get("KILN_SERVICE", ""),
        fleet=penv.get("KILN_FLEET", ""),
        release=release,
        address=f"127.0.0.1:{port}" if port else "",
        ref=found.ref,
        alive=True,
        started_at=procfs.started_at(found.stat.start_time),
        labels=labels,
    )

"""The per-environment deploy lock: a lease in the store, renewed while work runs.

A holder that died (same host, pid gone) or stopped renewing (lease expired)
is taken over, so a ``kill -9``'d deploy never blocks the environment.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType

from kiln.engine.context import Context
from kiln.errors import KilnError, LockHeld
from kiln.model import LockHolder

# Longer than the store's busy timeout (30 s), so one slow renewal never loses the lease;
# a holder that died on this host is taken over at once, whatever the lease says.
LEASE_SECONDS = 60.0
# How long a deploy waits for a read-only command's tidy-up, or a drift pass of the
# controller, to let go of the lock.
HOUSEKEEPING_WAIT = 30.0
BRIEF = ("housekeeping", "reconcile")  # holders worth waiting for; they never wait


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EnvLock:
    def __init__(self, ctx: Context, env: str, command: str) -> None:
        self.ctx = ctx
        self.env = env
        self.holder = LockHolder(
            id=uuid.uuid4().hex,
            pid=os.getpid(),
            host=socket.gethostname(),
            user=ctx.actor.split("@")[0],
            command=command,
            started_at=datetime.now(UTC),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock, or raise LockHeld naming the holder.

        Housekeeping (the tidy-up any read-only command does in passing) holds the
        lock only briefly, so a deploy waits for it rather than failing.
        """
        deadline = time.monotonic() + HOUSEKEEPING_WAIT
        while True:
            try:
                self._take()
                break
            except LockHeld:
                current = self.ctx.store.lock_holder(self.ctx.app, self.env)
                brief = current is not None and current[0].command in BRIEF
                if not brief or self.holder.command in BRIEF or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._thread = threading.Thread(target=self._renew, name="kiln-lock", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        store, app = self.ctx.store, self.ctx.app
        current = store.lock_holder(app, self.env)
        if current is not None:
            held, _ = current
            if held.host == self.holder.host and held.id != self.holder.id and _pid_alive(held.pid):
                # Alive on this host: held, even if its lease ran out (a stalled renewal).
                raise LockHeld(self.env, held.describe())
        try:
            store.acquire_lock(app, self.env, self.holder, LEASE_SECONDS)
        except LockHeld:
            current = store.lock_holder(app, self.env)
            if current is None:  # released between our two reads
                store.acquire_lock(app, self.env, self.holder, LEASE_SECONDS)
                return
            held, _ = current
            if held.host != self.holder.host or _pid_alive(held.pid):
                raise
            store.acquire_lock(app, self.env, self.holder, LEASE_SECONDS, steal_from=held.id)
            self.ctx.event("lock.taken_over", self.env, f"holder {held.describe()} is gone")

    def try_acquire(self) -> bool:
        try:
            self.acquire()
        except LockHeld:
            return False
        return True

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 4):
            try:
                ours = self.ctx.store.renew_lock(
                    self.ctx.app, self.env, self.holder.id, LEASE_SECONDS
                )
            except KilnError:
                ours = False
            if not ours:
                self.ctx.lease_lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.ctx.store.release_lock(self.ctx.app, self.env, self.holder.id)

    def __enter__(self) -> EnvLock:
        self.acquire()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

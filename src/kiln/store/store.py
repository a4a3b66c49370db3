"""The ``Store`` facade: kiln's one door to its database.

Each method is one short transaction (a read, or a write that is serialised
against every other writer), delegating to the module that owns the table.
Callers get model objects and kiln errors only: never a sqlalchemy object or
exception, never a secret value.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.errors import StoreError
from kiln.model.deployment import Deployment, DeploymentStatus, StepRecord, StepStatus
from kiln.model.digest import sha256_hex
from kiln.model.drift import DriftRecord, Finding
from kiln.model.event import Event
from kiln.model.fleet import Fleet, FleetState
from kiln.model.lock import LockHolder
from kiln.model.release import Release
from kiln.model.route import Route
from kiln.model.steps import Step
from kiln.store import (
    anchor,
    deployments,
    drift,
    events,
    fleets,
    locks,
    migrate,
    releases,
    secret_key,
    tokens,
)
from kiln.store.db import Database, connect


def token_digest(token: str) -> str:
    return "sha256:" + sha256_hex(token.encode())


class Store:
    def __init__(self, db: Database) -> None:
        """Use ``Store.open``; this wraps an already migrated database."""
        self._db = db
        # The tail anchor of the audit log; only a database file has a place for it.
        self._head_file = anchor.path_for(db.file) if db.file is not None else None

    @classmethod
    def open(cls, target: str | Path) -> Store:
        """Open a database file (created if missing) or a SQLAlchemy URL; migrate to head."""
        db = connect(target)
        try:
            migrate.upgrade(db)
        except BaseException:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        self._db.close()

    def secret_key(self) -> bytes:
        """The key secret digests are computed with (created on first use)."""
        if self._db.file is None:
            raise StoreError(
                "secret digests need a database file (a shared key store is "
                "not implemented for database URLs yet)"
            )
        return secret_key.load_or_create(secret_key.path_for(self._db.file))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._db.url.render_as_string(hide_password=True)!r})"

    # -- releases ---------------------------------------------------------------

    def create_release(self, release: Release) -> Release:
        with self._db.write("create a release") as conn:
            return releases.create(conn, release)

    def get_release(self, app: str, env: str, number: int) -> Release:
        with self._db.read("read a release") as conn:
            return releases.get(conn, app, env, number)

    def latest_release(self, app: str, env: str) -> Release | None:
        with self._db.read("read the latest release") as conn:
            return releases.latest(conn, app, env)

    def list_releases(self, app: str, env: str) -> list[Release]:
        with self._db.read("list releases") as conn:
            return releases.all_of(conn, app, env)

    def set_current_release(self, app: str, env: str, number: int) -> None:
        with self._db.write("set the current release") as conn:
            releases.set_current(conn, app, env, number)

    def current_release(self, app: str, env: str) -> int | None:
        with self._db.read("read the current release") as conn:
            return releases.current(conn, app, env)

    # -- fleets -----------------------------------------------------------------

    def add_fleet(self, fleet: Fleet) -> None:
        with self._db.write("add a fleet") as conn:
            fleets.add(conn, fleet)

    def get_fleet(self, fleet_id: str) -> Fleet:
        with self._db.read("read a fleet") as conn:
            return fleets.get(conn, fleet_id)

    def set_fleet_state(
        self, fleet_id: str, state: FleetState, retain_until: datetime | None = None
    ) -> Fleet:
        with self._db.write("set a fleet's state") as conn:
            return fleets.set_state(conn, fleet_id, state, retain_until)

    def fleets(self, app: str, env: str, states: Iterable[FleetState] | None = None) -> list[Fleet]:
        with self._db.read("list fleets") as conn:
            return fleets.of_env(conn, app, env, states)

    # -- deployments ------------------------------------------------------------

    def create_deployment(
        self,
        app: str,
        env: str,
        release: int,
        from_release: int | None,
        strategy: str,
        fleets: dict[str, str],
        previous: dict[str, str | None],
    ) -> Deployment:
        with self._db.write("create a deployment") as conn:
            deployment_id = deployments.create(
                conn,
                app=app,
                env=env,
                release=release,
                from_release=from_release,
                strategy=strategy,
                fleets=fleets,
                previous=previous,
            )
            return deployments.get(conn, deployment_id)

    def get_deployment(self, deployment_id: int) -> Deployment:
        with self._db.read("read a deployment") as conn:
            return deployments.get(conn, deployment_id)

    def running_deployment(self, app: str, env: str) -> Deployment | None:
        with self._db.read("read the running deployment") as conn:
            return deployments.running(conn, app, env)

    def list_deployments(self, app: str, env: str, limit: int = 50) -> list[Deployment]:
        with self._db.read("list deployments") as conn:
            return deployments.of_env(conn, app, env, limit)

    def begin_step(self, deployment_id: int, step: Step) -> StepRecord:
        with self._db.write("record a step") as conn:
            return deployments.begin_step(conn, deployment_id, step)

    def finish_step(
        self, deployment_id: int, seq: int, status: StepStatus, detail: str = ""
    ) -> StepRecord:
        with self._db.write("finish a step") as conn:
            return deployments.finish_step(conn, deployment_id, seq, status, detail)

    def record_failed_step(self, deployment_id: int, step: Step, detail: str) -> StepRecord:
        """A step that must not run (interrupted, aborted), logged as failed in one write."""
        with self._db.write("record a failed step") as conn:
            record = deployments.begin_step(conn, deployment_id, step)
            return deployments.finish_step(
                conn, deployment_id, record.seq, StepStatus.FAILED, detail
            )

    def set_progress(self, deployment_id: int, progress: dict[str, Any] | None) -> None:
        with self._db.write("record a deployment's progress") as conn:
            deployments.set_progress(conn, deployment_id, progress)

    def finish_deployment(
        self, deployment_id: int, status: DeploymentStatus, reason: str = ""
    ) -> Deployment:
        with self._db.write("finish a deployment") as conn:
            return deployments.finish(conn, deployment_id, status, reason)

    # -- the deploy lock --------------------------------------------------------

    def acquire_lock(
        self,
        app: str,
        env: str,
        holder: LockHolder,
        lease_seconds: float,
        steal_from: str | None = None,
    ) -> None:
        with self._db.write("acquire the deploy lock") as conn:
            locks.acquire(conn, app, env, holder, lease_seconds, steal_from)

    def renew_lock(self, app: str, env: str, holder_id: str, lease_seconds: float) -> bool:
        with self._db.write("renew the deploy lock") as conn:
            return locks.renew(conn, app, env, holder_id, lease_seconds)

    def release_lock(self, app: str, env: str, holder_id: str) -> None:
        with self._db.write("release the deploy lock") as conn:
            locks.release(conn, app, env, holder_id)

    def lock_holder(self, app: str, env: str) -> tuple[LockHolder, datetime] | None:
        with self._db.read("read the deploy lock") as conn:
            return locks.holder(conn, app, env)

    # -- drift ------------------------------------------------------------------

    def set_applied_routes(self, app: str, env: str, routes: tuple[Route, ...]) -> None:
        with self._db.write("record the applied routes") as conn:
            drift.set_applied(conn, app, env, routes)

    def applied_routes(self, app: str, env: str) -> tuple[Route, ...] | None:
        with self._db.read("read the applied routes") as conn:
            return drift.applied(conn, app, env)

    def record_findings(self, app: str, findings: list[Finding]) -> list[DriftRecord]:
        with self._db.write("record drift findings") as conn:
            return drift.record(conn, app, findings)

    def update_finding(self, finding_id: int, finding: Finding) -> None:
        """Add what was learnt later (the evidence) to an open finding."""
        with self._db.write("update a drift finding") as conn:
            drift.replace_finding(conn, finding_id, finding)

    def resolve_finding(self, finding_id: int, resolution: str) -> None:
        with self._db.write("resolve a drift finding") as conn:
            drift.resolve(conn, finding_id, resolution)

    def quarantine(self, finding_id: int, until: datetime | None, resolution: str) -> None:
        with self._db.write("quarantine an instance") as conn:
            drift.quarantine(conn, finding_id, until, resolution)

    def quarantined(self, app: str, env: str) -> list[DriftRecord]:
        with self._db.read("list quarantined instances") as conn:
            return drift.quarantined(conn, app, env)

    def findings(
        self, app: str, env: str | None = None, *, open_only: bool = False
    ) -> list[DriftRecord]:
        with self._db.read("list drift findings") as conn:
            return drift.listing(conn, app, env, open_only)

    def finding(self, app: str, finding_id: int) -> DriftRecord:
        with self._db.read("read a drift finding") as conn:
            return drift.get(conn, app, finding_id)

    # -- API tokens -------------------------------------------------------------

    def create_token(self, name: str) -> str:
        """A new API token named ``name``: returned once, only its digest is kept."""
        token = "kiln_" + secrets.token_urlsafe(32)
        with self._db.write("create an API token") as conn:
            tokens.create(conn, name, token_digest(token))
        return token

    def token_name(self, token: str) -> str | None:
        """The name of the token, or None for an unknown one."""
        with self._db.read("check an API token") as conn:
            return tokens.name_of(conn, token_digest(token))

    def token_names(self) -> list[str]:
        with self._db.read("list API tokens") as conn:
            return tokens.names(conn)

    def revoke_token(self, name: str) -> None:
        with self._db.write("revoke an API token") as conn:
            tokens.revoke(conn, name)

    # -- the audit log ----------------------------------------------------------

    def append_event(
        self,
        *,
        actor: str,
        action: str,
        app: str,
        env: str,
        reason: str = "",
        detail: dict[str, Any] | None = None,
    ) -> Event:
        event: Event | None = None
        try:
            with self._db.write("append an audit event") as conn:
                event = events.append(
                    conn,
                    self._head_file,
                    actor=actor,
                    action=action,
                    app=app,
                    env=env,
                    reason=reason,
                    detail=detail,
                )
        except BaseException:
            # The anchor was written before the commit (so anchors of concurrent
            # appenders stay in order); the commit failed, so take it back.
            if event is not None and self._head_file is not None:
                previous = anchor.Head(event.seq - 1, event.prev_hash) if event.seq > 1 else None
                anchor.restore(self._head_file, anchor.Head(event.seq, event.hash), previous)
            raise
        return event

    def events(
        self,
        app: str | None = None,
        env: str | None = None,
        limit: int | None = None,
        *,
        action: str | None = None,
    ) -> list[Event]:
        with self._db.read("read audit events") as conn:
            return events.listing(conn, app, env, limit, action)

    def verify_events(self) -> int:
        # A write transaction, though it only reads: no append can slip in between
        # reading the anchor and reading the table.
        with self._db.write("verify the audit log") as conn:
            return events.verify(conn, self._head_file)

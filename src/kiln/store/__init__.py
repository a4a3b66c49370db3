"""kiln's state database: releases, fleets, deployments, the deploy lock, the audit log.

The only package that touches the database (SQLite by default, one file under
the state directory). It imports only ``kiln.model``, ``kiln.errors``, the
standard library, sqlalchemy and alembic, and never lets a sqlalchemy
exception escape: callers see ``StoreError``, ``NotFound``, ``LockHeld`` or
``AuditError``.
"""

from kiln.store.store import Store

__all__ = ["Store"]

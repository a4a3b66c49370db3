"""The controller's HTTP API (FastAPI): every call needs a bearer token.

Handlers stay thin: each opens its own engine context (threads never share
one), calls the engine, returns JSON. Deploys and rollbacks run in a
background thread and answer 202 at once; `GET .../status` follows them.
The token is compared by digest and never logged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from kiln import __version__
from kiln.engine import deploy as engine
from kiln.engine import queries
from kiln.engine.context import Context, open_context
from kiln.engine.drift import detect
from kiln.engine.gates import request_gate
from kiln.errors import KilnError, NotFound, SpecError
from kiln.model import to_json
from kiln.strategies.gates import Gate

_bearer = HTTPBearer(auto_error=False)


class DeployRequest(BaseModel):
    reason: str = Field("", max_length=1000, description="why (recorded in the audit log)")


class RollbackRequest(BaseModel):
    to: int | None = Field(None, ge=1, description="release number (default: the previous)")
    reason: str = Field("", max_length=1000)


class GateRequest(BaseModel):
    reason: str = Field("", max_length=1000)


class Accepted(BaseModel):
    accepted: bool
    message: str


def context(request: Request) -> Iterator[Context]:
    """A context of its own for each request: handlers run on a thread pool."""
    ctx = open_context(spec=request.app.state.spec, state=request.app.state.state)
    try:
        yield ctx
    finally:
        ctx.close()


Ctx = Annotated[Context, Depends(context)]


def caller(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The calling token's name; 401 without a known token."""
    name = ctx.store.token_name(credentials.credentials) if credentials else None
    if name is None:
        raise HTTPException(401, "missing or unknown token", {"WWW-Authenticate": "Bearer"})
    return name


Caller = Annotated[str, Depends(caller)]


def create_app(spec: Path, state: Path) -> FastAPI:
    app = FastAPI(
        title="kiln controller",
        version=__version__,
        description="Status, history, drift and events of one state directory; "
        "deploy, rollback and gates. Every call needs `Authorization: Bearer <token>` "
        "(`kiln token create NAME`).",
    )
    app.state.spec, app.state.state = spec, state
    running: dict[str, threading.Thread] = {}

    def env_of(ctx: Context, env: str) -> str:
        if env not in ctx.spec.environments:
            raise HTTPException(404, f"unknown environment {env!r}")
        return env

    def as_http(e: KilnError) -> HTTPException:
        # Bad input is 400; something that is not there 404; the rest is the state of
        # the environment refusing the request (a lock, a running deployment): 409.
        code = 404 if isinstance(e, NotFound) else 400 if isinstance(e, SpecError) else 409
        return HTTPException(code, str(e))

    @app.get("/v1/environments", summary="The spec's environments")
    def environments(ctx: Ctx, who: Caller) -> list[str]:
        return sorted(ctx.spec.environments)

    @app.get("/v1/environments/{env}/status", summary="What runs, and any deployment")
    def status(env: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
        try:
            return queries.status(ctx, env_of(ctx, env)).to_json()
        except KilnError as e:
            raise as_http(e) from None

    @app.get("/v1/environments/{env}/history", summary="Releases, newest first")
    def history(env: str, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
        entries = queries.history(ctx, env_of(ctx, env))
        return [
            {
                "release": to_json(e.release),
                "deployment": to_json(e.deployment) if e.deployment else None,
            }
            for e in entries
        ]

    @app.get("/v1/environments/{env}/drift", summary="Drift findings (looks now)")
    def drift(
        env: str, ctx: Ctx, who: Caller, all: Annotated[bool, Query()] = False
    ) -> list[dict[str, Any]]:
        try:
            detect(ctx, env_of(ctx, env))
        except KilnError as e:
            raise as_http(e) from None
        return [to_json(r) for r in ctx.store.findings(ctx.app, env, open_only=not all)]

    @app.get("/v1/events", summary="The audit log, newest last")
    def events(
        ctx: Ctx,
        who: Caller,
        env: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict[str, Any]]:
        return [to_json(e) for e in ctx.store.events(ctx.app, env, limit)]

    def in_background(env: str, actor: str, work: Any) -> Accepted:
        busy = running.get(env)
        if busy is not None and busy.is_alive():
            raise HTTPException(409, f"a deploy or rollback of {env} is running here already")

        def run() -> None:
            ctx = open_context(spec=spec, state=state)
            ctx.actor = actor
            try:
                work(ctx)
            except KilnError:
                pass  # the deployment's own record and the audit log say how it ended
            finally:
                ctx.close()

        thread = threading.Thread(target=run, name=f"kiln-api-{env}", daemon=True)
        running[env] = thread
        thread.start()
        return Accepted(accepted=True, message=f"started; GET /v1/environments/{env}/status")

    @app.post("/v1/environments/{env}/deploy", status_code=202, summary="Bake, release, deploy")
    def deploy(env: str, body: DeployRequest, ctx: Ctx, who: Caller) -> Accepted:
        env_of(ctx, env)
        reason = body.reason or f"deploy via the API by {who}"
        return in_background(env, f"api:{who}", lambda c: engine.deploy(c, env, reason=reason))

    @app.post("/v1/environments/{env}/rollback", status_code=202, summary="Roll back")
    def rollback(env: str, body: RollbackRequest, ctx: Ctx, who: Caller) -> Accepted:
        env_of(ctx, env)
        reason = body.reason or f"rollback via the API by {who}"
        return in_background(
            env, f"api:{who}", lambda c: engine.rollback(c, env, to=body.to, reason=reason)
        )

    @app.post("/v1/environments/{env}/gates/{gate}", summary="advance, pause or abort")
    def gate(env: str, gate: Gate, body: GateRequest, ctx: Ctx, who: Caller) -> dict[str, Any]:
        ctx.actor = f"api:{who}"
        try:
            dep = request_gate(ctx, env_of(ctx, env), gate, body.reason or "via the API")
        except KilnError as e:
            raise as_http(e) from None
        return {"deployment": dep.id, "release": dep.release, "gate": gate.value}

    return app

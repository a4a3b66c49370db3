"""The controller's HTTP API (FastAPI): every call needs a bearer token.

Handlers stay thin: each opens its own engine context (threads never share
one), calls the engine, returns JSON. Deploys, rollbacks and promotions run in a
job of their own and answer 202 at once with the job's id; `GET /v1/jobs/ID`
follows it (the CLI does, when a controller runs).
The token is compared by digest and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from kiln import __version__
from kiln.api.jobs import MAX_REPORTS, Busy, Jobs
from kiln.engine import deploy as engine
from kiln.engine import queries
from kiln.engine.context import Context, open_context
from kiln.engine.deploy import Outcome
from kiln.engine.drift import detect
from kiln.engine.gates import request_gate
from kiln.engine.promote import promote as promote_release
from kiln.engine.reporter import Reporter
from kiln.errors import KilnError, NotFound, SpecError
from kiln.model import to_json
from kiln.strategies.gates import Gate

_bearer = HTTPBearer(auto_error=False)


class Submission(BaseModel):
    reason: str = Field("", max_length=1000, description="why (recorded in the audit log)")
    actor: str = Field(
        "", max_length=200, description="who asks (recorded beside the token's name)"
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        max_length=200,
        description="values of secrets the spec declares, as a CLI's environment has them; "
        "the controller keeps them (in memory) once the job succeeds, for its replacements",
    )


class DeployRequest(Submission):
    pass


class RollbackRequest(Submission):
    to: int | None = Field(None, ge=1, description="release number (default: the previous)")


class PromoteRequest(Submission):
    source: str = Field(max_length=200, description="the environment it served in")
    release: int | None = Field(
        None, ge=1, description="release number there (default: what serves there)"
    )


class GateRequest(BaseModel):
    reason: str = Field("", max_length=1000)


class Accepted(BaseModel):
    job: int
    message: str


Work = Callable[[Context], Outcome]


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


def create_app(spec: Path, state: Path, environ: dict[str, str] | None = None) -> FastAPI:
    """``environ`` is the controller's environment, shared with its loop: secrets that
    a job brought are put there when it succeeds, so later replacements find them."""
    app = FastAPI(
        title="kiln controller",
        version=__version__,
        description="Status, history, drift and events of one state directory; "
        "deploy, rollback and gates. Every call needs `Authorization: Bearer <token>` "
        "(`kiln token create NAME`).",
    )
    app.state.spec, app.state.state = spec, state
    shared = environ if environ is not None else dict(os.environ)
    jobs = Jobs()

    @app.get("/v1/controller", summary="Which spec and state directory this controller serves")
    def controller(ctx: Ctx, who: Caller) -> dict[str, Any]:
        return {"spec": str(spec), "state": str(state), "pid": os.getpid(), "version": __version__}

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

    def checked_secrets(ctx: Context, env: str, given: dict[str, str]) -> dict[str, str]:
        # Only secrets: anything else would let a caller set the controller's own
        # environment (DOCKER_HOST, say).
        unknown = sorted(set(given) - ctx.spec.secret_names(env))
        if unknown:
            raise HTTPException(400, f"not secrets of {env} in the spec: {', '.join(unknown)}")
        return given

    def submit(
        ctx: Context, env: str, kind: str, who: str, body: Submission, work: Work
    ) -> Accepted:
        # The token names the caller; a claimed actor (the CLI sends its user) is kept
        # beside it, never instead of it.
        actor = f"{body.actor} (api:{who})" if body.actor else f"api:{who}"
        secrets = checked_secrets(ctx, env, body.secrets)

        def run(reporter: Reporter) -> str:
            job_ctx = open_context(
                spec=spec, state=state, environ={**shared, **secrets}, reporter=reporter
            )
            job_ctx.actor = actor
            try:
                message = work(job_ctx).message
            finally:
                job_ctx.close()
            shared.update(secrets)
            return message

        try:
            job = jobs.start(kind, env, actor, run)
        except Busy as e:
            raise HTTPException(409, str(e)) from None
        return Accepted(job=job.id, message=f"started; follow GET /v1/jobs/{job.id}")

    @app.post("/v1/environments/{env}/deploy", status_code=202, summary="Bake, release, deploy")
    def deploy(env: str, body: DeployRequest, ctx: Ctx, who: Caller) -> Accepted:
        env_of(ctx, env)
        reason = body.reason or f"deploy via the API by {who}"
        return submit(ctx, env, "deploy", who, body, lambda c: engine.deploy(c, env, reason=reason))

    @app.post("/v1/environments/{env}/rollback", status_code=202, summary="Roll back")
    def rollback(env: str, body: RollbackRequest, ctx: Ctx, who: Caller) -> Accepted:
        env_of(ctx, env)
        reason = body.reason or f"rollback via the API by {who}"
        return submit(
            ctx,
            env,
            "rollback",
            who,
            body,
            lambda c: engine.rollback(c, env, to=body.to, reason=reason),
        )

    @app.post(
        "/v1/environments/{env}/promote",
        status_code=202,
        summary="Release what serves (or served) in another environment here; nothing rebuilt",
    )
    def promote(env: str, body: PromoteRequest, ctx: Ctx, who: Caller) -> Accepted:
        env_of(ctx, env)
        env_of(ctx, body.source)
        reason = body.reason or f"promote from {body.source} via the API by {who}"
        return submit(
            ctx,
            env,
            "promote",
            who,
            body,
            lambda c: promote_release(
                c, source=body.source, target=env, release=body.release, reason=reason
            ),
        )

    @app.get("/v1/jobs/{job_id}", summary="A deploy, rollback or promotion run here")
    def job(
        job_id: int, who: Caller, since: Annotated[int, Query(ge=0, le=MAX_REPORTS)] = 0
    ) -> dict[str, Any]:
        found = jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id} in this controller")
        return found.view(since)

    @app.post("/v1/environments/{env}/gates/{gate}", summary="advance, pause or abort")
    def gate(env: str, gate: Gate, body: GateRequest, ctx: Ctx, who: Caller) -> dict[str, Any]:
        ctx.actor = f"api:{who}"
        try:
            dep = request_gate(ctx, env_of(ctx, env), gate, body.reason or "via the API")
        except KilnError as e:
            raise as_http(e) from None
        return {"deployment": dep.id, "release": dep.release, "gate": gate.value}

    return app

"""``kiln``: parse options, make one call into the engine, render the answer.

The one error boundary: a ``KilnError`` prints one line and exits 1; usage
errors exit 2 (click); anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiln import __version__
from kiln.cli import render
from kiln.cli.reporter import RichReporter
from kiln.drift import patch as drift_patch
from kiln.engine import deploy as engine
from kiln.engine import queries
from kiln.engine.context import Context, open_context
from kiln.engine.controller import serve as run_controller
from kiln.engine.deploy import Outcome
from kiln.engine.down import down as engine_down
from kiln.engine.drift import detect as detect_drift
from kiln.engine.drift import reconcile as reconcile_drift
from kiln.engine.gates import request_gate
from kiln.engine.promote import promote as promote_release
from kiln.engine.releases import bake as bake_services
from kiln.engine.scaffold import write_starter
from kiln.errors import KilnError
from kiln.model import to_json
from kiln.spec import json_schema, load_spec
from kiln.strategies.gates import Gate

app = typer.Typer(
    help="kiln: immutable infrastructure. Bake, release, deploy by replacement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The append-only, hash-chained event log.", no_args_is_help=True)
router_app = typer.Typer(
    help="The builtin router (started on demand by kiln).", no_args_is_help=True
)
drift_app = typer.Typer(
    help="What runs or routes otherwise than released: find it, keep the evidence.",
    invoke_without_command=True,
)
app.add_typer(audit_app, name="audit")
app.add_typer(drift_app, name="drift")
token_app = typer.Typer(help="Bearer tokens of the controller's API.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(router_app, name="router")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SpecOpt = Annotated[Path | None, typer.Option("--spec", "-f", help="path to kiln.yaml")]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state", help="state directory (default: .kiln beside the spec, or $KILN_STATE)"
    ),
]
EnvOpt = Annotated[str | None, typer.Option("--env", "-e", help="environment")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@contextmanager
def _context(spec: Path | None, state: Path | None, *, quiet: bool = False) -> Iterator[Context]:
    reporter = RichReporter(err)
    ctx = open_context(spec=spec, state=state, reporter=None if quiet else reporter)
    try:
        yield ctx
    finally:
        reporter.close()
        ctx.close()


@app.command()
def init(directory: Annotated[Path, typer.Argument()] = Path(".")) -> None:
    """Write a starter kiln.yaml and app into an empty directory."""
    written = write_starter(directory)
    for path in written:
        out.print(f"wrote {path}")
    out.print("next: API_TOKEN=dev kiln deploy")


@app.command()
def validate(spec: SpecOpt = None) -> None:
    """Check kiln.yaml; errors print as FILE:LINE: field: message."""
    from kiln.engine.context import find_spec

    path = find_spec(spec)
    loaded = load_spec(path)
    out.print(
        f"{path.name}: ok (app {loaded.app}, {len(loaded.services)} service(s), "
        f"environments: {', '.join(loaded.environments)})"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of kiln.yaml (for editors)."""
    print(json.dumps(json_schema(), indent=2))


@app.command()
def bake(
    service: Annotated[str | None, typer.Argument()] = None,
    env: EnvOpt = None,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Snapshot services' build directories into content-addressed artifacts."""
    with _context(spec, state, quiet=True) as ctx:
        for name, digest in bake_services(ctx, ctx.spec.select_env(env), service).items():
            out.print(f"{name} {digest}")


@app.command()
def plan(env: EnvOpt = None, spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Show what a deploy would do, without changing anything."""
    with _context(spec, state, quiet=True) as ctx:
        render.preview(out, queries.preview(ctx, ctx.spec.select_env(env)))


@app.command()
def deploy(
    env: EnvOpt = None,
    reason: Annotated[
        str, typer.Option("--reason", "-m", help="why (recorded in the audit log)")
    ] = "",
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Bake, release and deploy by replacement (blue-green, canary or rolling).
    With a controller running (`kiln serve`), it runs there and this follows it."""
    with _context(spec, state) as ctx:
        name = ctx.spec.select_env(env)
        _run_or_submit(
            ctx, name, "deploy", {"reason": reason}, lambda: engine.deploy(ctx, name, reason=reason)
        )


@app.command()
def rollback(
    env: EnvOpt = None,
    to: Annotated[
        int | None, typer.Option("--to", help="release number (default: the previous one)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Deploy a new release pointing at an earlier release's artifact and config
    (through the controller, when one runs)."""
    with _context(spec, state) as ctx:
        name = ctx.spec.select_env(env)
        _run_or_submit(
            ctx,
            name,
            "rollback",
            {"to": to, "reason": reason},
            lambda: engine.rollback(ctx, name, to=to, reason=reason),
        )


@app.command()
def promote(
    source: Annotated[str, typer.Option("--from", help="environment it served in")],
    target: Annotated[str, typer.Option("--to", help="environment to release it in")],
    release: Annotated[
        int | None, typer.Argument(help="release number in --from (default: what serves there)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Release the very artifact that served in --from into --to; nothing is rebuilt
    (through the controller, when one runs)."""
    with _context(spec, state) as ctx:
        ctx.spec.select_env(source)
        _run_or_submit(
            ctx,
            ctx.spec.select_env(target),
            "promote",
            {"source": source, "release": release, "reason": reason},
            lambda: promote_release(
                ctx, source=source, target=target, release=release, reason=reason
            ),
        )


def _run_or_submit(
    ctx: Context, env: str, kind: str, body: dict[str, object], here: Callable[[], Outcome]
) -> None:
    """Submit to the controller serving this state directory and follow the job there,
    or, with none running, do the work in this process. Either way the lock keeps one
    deployment per environment."""
    from kiln.api.client import connect

    controller = connect(ctx.state_dir)
    if controller is not None and controller.spec != ctx.spec_path:
        err.print(f"the controller serves {controller.spec}, not {ctx.spec_path}: running here")
        controller.close()
        controller = None
    if controller is None:
        out.print(here().message)
        return
    # Secrets come from this command's environment, as they do without a controller.
    names = sorted(ctx.spec.secret_names(env))
    body = {
        **body,
        "actor": ctx.actor,
        "secrets": {n: ctx.environ[n] for n in names if n in ctx.environ},
    }
    reporter = RichReporter(err)
    try:
        out.print(controller.run(kind, env, body, reporter))
    except KeyboardInterrupt:
        reporter.close()
        err.print(
            f"stopped following; the {kind} goes on in the controller "
            "(`kiln status` to look, `kiln abort` to stop it)"
        )
        raise typer.Exit(130) from None
    finally:
        reporter.close()
        controller.close()


ReasonOpt = Annotated[str, typer.Option("--reason", "-m", help="why (recorded in the audit log)")]


def _gate(gate: Gate, env: str | None, reason: str, spec: Path | None, state: Path | None) -> None:
    with _context(spec, state, quiet=True) as ctx:
        dep = request_gate(ctx, ctx.spec.select_env(env), gate, reason)
        out.print(f"asked deployment {dep.id} (release {dep.release}) to {gate}")


@app.command()
def advance(
    env: EnvOpt = None, reason: ReasonOpt = "", spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """End the running deployment's current pause (or lift a `kiln pause`)."""
    _gate(Gate.ADVANCE, env, reason, spec, state)


@app.command()
def pause(
    env: EnvOpt = None, reason: ReasonOpt = "", spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """Hold the running deployment at its current step until `kiln advance`."""
    _gate(Gate.PAUSE, env, reason, spec, state)


@app.command()
def abort(
    env: EnvOpt = None, reason: ReasonOpt = "", spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """Roll the running deployment back now: previous routes, new fleets destroyed."""
    _gate(Gate.ABORT, env, reason, spec, state)


@app.command()
def resume(env: EnvOpt = None, spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Finish or roll back a deployment whose kiln was killed."""
    with _context(spec, state) as ctx:
        dep = engine.resume(ctx, ctx.spec.select_env(env))
        out.print(f"deployment {dep.id} {dep.status.value}" if dep else "nothing to resume")


@app.command()
def status(
    env: EnvOpt = None, as_json: JsonOpt = False, spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """What runs: current release, fleets, instances, deployment in progress."""
    with _context(spec, state, quiet=as_json) as ctx:
        name = ctx.spec.select_env(env)
        engine.housekeeping(ctx, name)
        st = queries.status(ctx, name)
        if as_json:
            print(json.dumps(st.to_json(), indent=2))
        else:
            render.status(out, st)


@app.command()
def history(
    env: EnvOpt = None, as_json: JsonOpt = False, spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """Every release of the environment, newest first, with its deployment's result."""
    with _context(spec, state, quiet=True) as ctx:
        entries = queries.history(ctx, ctx.spec.select_env(env))
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "release": to_json(e.release),
                            "deployment": to_json(e.deployment) if e.deployment else None,
                        }
                        for e in entries
                    ],
                    indent=2,
                )
            )
        else:
            render.history(out, entries)


@app.command()
def logs(
    service: str,
    env: EnvOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    tail: Annotated[int, typer.Option("--tail", "-n")] = 100,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Print a service's instance logs (-f to follow)."""
    with _context(spec, state, quiet=True) as ctx:
        name = ctx.spec.select_env(env)
        if service not in ctx.spec.services:
            raise KilnError(
                f"unknown service {service!r} (services: {', '.join(sorted(ctx.spec.services))})"
            )
        try:
            for line in ctx.provider(name).logs(name, service, follow=follow, tail=tail):
                print(line, flush=True)
        except KeyboardInterrupt:
            pass


@app.command()
def down(
    env: EnvOpt = None,
    volumes: Annotated[bool, typer.Option("--volumes", help="also delete volumes")] = False,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Stop every instance of the environment; volumes are kept unless --volumes."""
    with _context(spec, state) as ctx:
        n = engine_down(ctx, ctx.spec.select_env(env), volumes=volumes)
        out.print(f"stopped {n} instance(s)" + ("; volumes deleted" if volumes else ""))


@drift_app.callback()
def drift_list(
    ctx: typer.Context,
    env: EnvOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="resolved findings too")] = False,
    as_json: JsonOpt = False,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Look for drift now (changing nothing) and list the open findings."""
    if ctx.invoked_subcommand is not None:
        return
    with _context(spec, state, quiet=True) as kiln:
        name = kiln.spec.select_env(env)
        found = detect_drift(kiln, name)
        records = kiln.store.findings(kiln.app, name, open_only=not show_all)
        if as_json:
            print(json.dumps([to_json(r) for r in records], indent=2))
            return
        if found.skipped:
            err.print(found.skipped)
        render.findings(out, records)


@drift_app.command("show")
def drift_show(
    finding: int, as_json: JsonOpt = False, spec: SpecOpt = None, state: StateOpt = None
) -> None:
    """One finding, whole: what, where, when, the evidence and what was done."""
    with _context(spec, state, quiet=True) as kiln:
        record = kiln.store.finding(kiln.app, finding)
        if as_json:
            print(json.dumps(to_json(record), indent=2))
        else:
            render.finding(out, record)


@drift_app.command("export")
def drift_export(
    finding: int,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here (default: stdout)")
    ] = None,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """A patch of an in-instance change against the service's build context
    (apply it there with `patch -p1` or `git apply`), so the tweak becomes code."""
    with _context(spec, state, quiet=True) as kiln:
        record = kiln.store.finding(kiln.app, finding)
        text = drift_patch(record.finding.evidence)
        if not text:
            raise KilnError(
                f"finding {finding} has no text change that maps to a build context file"
            )
        if output is None:
            print(text, end="")
        else:
            output.write_text(text)
            out.print(f"wrote {output}")


@app.command()
def reconcile(env: EnvOpt = None, spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Look for drift and (on_drift: enforce) wipe it away by replacement, once."""
    with _context(spec, state) as kiln:
        name = kiln.spec.select_env(env)
        result = reconcile_drift(kiln, name)
        if result.skipped:
            out.print(result.skipped)
        for action in result.actions:
            out.print(action, markup=False)
        if not result.actions and result.open:
            out.print(f"{len(result.open)} open finding(s), reported only (on_drift: report)")
        elif not result.open and not result.actions:
            out.print(f"no drift in {kiln.app}/{name}")


@app.command()
def serve(
    listen: Annotated[
        str, typer.Option("--listen", help="the API's 127.0.0.1:PORT ('' for the socket only)")
    ] = "127.0.0.1:7070",
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """Run the controller: each environment's drift pass every drift.interval, resuming
    what a dead kiln left; the deploys, rollbacks and promotions the CLI submits; and
    the HTTP API (on --listen and STATE/controller.sock). One per state directory.
    Ctrl-C or SIGTERM stops it; traffic never depends on it."""
    from kiln.api.files import SOCKET
    from kiln.api.server import claim, run_api

    stop = threading.Event()
    with _context(spec, state) as kiln, claim(kiln.state_dir):
        loop = threading.Thread(target=run_controller, args=(kiln, stop), name="kiln-controller")
        loop.start()
        try:
            where = f"http://{listen} and " if listen else ""
            out.print(f"API on {where}{kiln.state_dir / SOCKET}")
            run_api(kiln, listen or None)  # until SIGINT/SIGTERM
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            loop.join()
            err.print("controller stopped")


@token_app.command("create")
def token_create(name: str, spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Create an API token; it is printed once and only its digest is kept."""
    with _context(spec, state, quiet=True) as kiln:
        print(kiln.store.create_token(name))


@token_app.command("list")
def token_list(spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Names of the API tokens."""
    with _context(spec, state, quiet=True) as kiln:
        for name in kiln.store.token_names():
            out.print(name)


@token_app.command("revoke")
def token_revoke(name: str, spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Revoke an API token at once."""
    with _context(spec, state, quiet=True) as kiln:
        kiln.store.revoke_token(name)
        out.print(f"revoked {name}")


@audit_app.command("verify")
def audit_verify(spec: SpecOpt = None, state: StateOpt = None) -> None:
    """Check the event log's hash chain; exits 1 naming the first bad event."""
    with _context(spec, state, quiet=True) as ctx:
        out.print(f"audit log ok: {ctx.store.verify_events()} event(s), chain intact")


@audit_app.command("log")
def audit_log(
    env: EnvOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    spec: SpecOpt = None,
    state: StateOpt = None,
) -> None:
    """The latest events: who did what, when and why."""
    with _context(spec, state, quiet=True) as ctx:
        items = ctx.store.events(ctx.app, env)[-limit:]
        if as_json:
            print(json.dumps([to_json(e) for e in items], indent=2))
        else:
            render.events(out, items)


@router_app.command("run")
def router_run(state: Annotated[Path, typer.Option("--state", help="state directory")]) -> None:
    """Run the router in the foreground (kiln starts it on demand)."""
    from kiln.router.server import serve

    serve(state.resolve())


def version_callback(value: bool) -> None:
    if value:
        print(f"kiln {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True)
    ] = False,
) -> None:
    """kiln: immutable infrastructure. Every deploy is a replacement, never a modification."""


def main() -> None:
    # SIGTERM stops a deploy like Ctrl-C does: the engine records the step as
    # interrupted and runs the failure path before exiting.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except KilnError as e:
        err.print("[red]error:[/] ", end="")
        err.print(str(e), markup=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        err.print(
            "kiln hit a bug: please report it with the traceback above "
            f"(kiln {__version__}, Python {sys.version.split()[0]}, pid {os.getpid()})"
        )
        sys.exit(70)

"""Tables and one-line summaries for the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from kiln.engine.queries import DeployPreview, HistoryEntry, Status
from kiln.model import Deployment, Event
from kiln.model.drift import DriftRecord


def short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%m-%d %H:%M:%S") if at else "-"


def status(console: Console, st: Status) -> None:
    head = f"[bold]{st.app}/{st.env}[/] on {st.provider}"
    if st.current:
        head += f" — release {st.current.number} serving"
    else:
        head += " — nothing deployed"
    console.print(head)
    if st.running:
        running(console, st.running)
    elif st.last:
        console.print(
            f"last deployment {st.last.id}: {st.last.status.value}"
            + (f" — {st.last.reason}" if st.last.reason else "")
        )
    for service, listen in st.routes.items():
        console.print(f"route {service}: http://{listen}")
    table = Table("fleet", "state", "release", "artifact", "alive", "traffic")
    table.columns[0].no_wrap = True
    for view in st.fleets:
        f = view.fleet
        state = f.state.value
        if f.retain_until:
            state += f" until {f.retain_until:%H:%M:%S}"
        table.add_row(
            f.id,
            state,
            str(f.release),
            short(f.artifact),
            f"{view.alive}/{f.replicas}",
            f"{st.weights[f.id]}%" if f.id in st.weights else "-",
        )
    console.print(table)
    if st.strays:
        console.print(
            f"[red]{len(st.strays)} instance(s) kiln did not launch in this "
            f"environment:[/] " + ", ".join(i.id for i in st.strays)
        )


def running(console: Console, dep: Deployment) -> None:
    console.print(
        f"[yellow]deployment {dep.id} in progress[/] ({dep.strategy}, release {dep.release}); "
        "`kiln resume` finishes it if its kiln died"
    )
    if dep.steps:
        last = dep.steps[-1]
        where = f"step {last.seq}: {last.step.kind.replace('_', ' ')} {last.status.value}"
        console.print(where + (f" — {last.detail}" if last.detail else ""), markup=False)
    progress = dep.progress or {}
    if progress.get("kind") == "pause":
        console.print(
            f"paused at canary step {progress['step']} ({progress['weight']}%) "
            f"until {progress['until']}",
            markup=False,
        )
    elif progress.get("kind") == "analyze":
        console.print(
            f"analysis at canary step {progress['step']} ({progress['weight']}%), "
            f"{progress['elapsed']:g}s of a {progress['window']:g}s window:",
            markup=False,
        )
        table = Table("service", "fleet", "requests", "errors", "p99", "verdict")
        for service, numbers in progress["services"].items():
            for role in ("canary", "stable"):
                w = numbers[role]
                if w is None:
                    continue
                rate = f" ({w['errors'] / w['requests']:.1%})" if w["requests"] else ""
                p99 = w["p99_ms"]
                table.add_row(
                    service,
                    f"{w['fleet']} ({role})",
                    str(w["requests"]),
                    f"{w['errors']}{rate}",
                    f">{w['p99_over_ms']:g}ms"
                    if "p99_over_ms" in w
                    else ("-" if p99 is None else f"{p99:g}ms"),
                    numbers["outcome"] if role == "canary" else "",
                )
        console.print(table)


def history(console: Console, entries: list[HistoryEntry]) -> None:
    table = Table("release", "created", "author", "artifacts", "commit", "reason", "result")
    for e in entries:
        r, d = e.release, e.deployment
        commit = (r.commit[:8] + ("+dirty" if r.dirty else "")) if r.commit else "-"
        table.add_row(
            str(r.number),
            when(r.created_at),
            r.author,
            " ".join(f"{s}={short(a)}" for s, a in r.artifacts.items()),
            commit,
            r.reason,
            f"{d.status.value}" + (f": {d.reason}" if d and d.reason else "") if d else "-",
        )
    console.print(table)


def preview(console: Console, p: DeployPreview) -> None:
    cur = f"release {p.current.number}" if p.current else "nothing"
    console.print(f"[bold]plan[/]: {cur} -> new release")
    for c in p.plan.changes:
        line = f"  {c.service}: {c.action}"
        if c.action == "launch":
            line += f" {c.launch} instance(s) as {c.target}"
        elif c.action == "reuse":
            line += f" warm fleet {c.target}"
        if c.retire:
            line += f", {c.retire} instance(s) of {c.current} leave the route"
        console.print(line)
        for item in c.diff.summary() if c.diff else []:
            console.print(f"      {item}")
    if not p.plan.changed:
        console.print("nothing to do: the current release already serves this")
    for n, step in enumerate(p.steps, 1):
        console.print(f"  step {n}: {step}")


def events(console: Console, items: list[Event]) -> None:
    table = Table("seq", "at", "actor", "action", "env", "reason")
    for e in items:
        table.add_row(str(e.seq), when(e.at), e.actor, e.action, e.env, e.reason)
    console.print(table)


def findings(console: Console, records: list[DriftRecord]) -> None:
    if not records:
        console.print("no drift")
        return
    table = Table("id", "found", "kind", "subject", "summary", "action / resolution")
    table.columns[3].no_wrap = True
    for r in records:
        f = r.finding
        table.add_row(
            str(r.id),
            when(r.found_at),
            f.kind.value,
            f.subject,
            f.summary,
            r.resolution or f"open: {f.action.value}",
        )
    console.print(table)


def finding(console: Console, r: DriftRecord) -> None:
    f = r.finding
    console.print(f"[bold]finding {r.id}[/]: {f.kind.value} in {r.app}/{f.env}")
    console.print(f.summary, markup=False)
    console.print(
        f"found {when(r.found_at)}; "
        + (
            f"resolved {when(r.resolved_at)}: {r.resolution}"
            if r.resolution
            else f"open (enforcement: {f.action.value})"
        ),
        markup=False,
    )
    for change in f.changes:
        console.print(f"  {change.kind:8} {change.path}", markup=False)
    for e in f.evidence:
        where = f" (build context: {e.source})" if e.source else ""
        what = "binary" if e.binary else f"{e.size} bytes" + (", truncated" if e.truncated else "")
        console.print(f"evidence: {e.kind} {e.path}{where}, {what}", markup=False)
        if e.diff:
            console.print(e.diff.rstrip("\n"), markup=False, highlight=False)
    for key, value in f.detail.items():
        console.print(f"  {key}: {value}", markup=False)

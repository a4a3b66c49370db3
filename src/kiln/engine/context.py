"""The explicit context every engine call gets: no process-global state."""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.engine.reporter import Reporter, SilentReporter
from kiln.errors import KilnError, SpecError
from kiln.model import Event
from kiln.notify import Webhook
from kiln.providers.base import Provider, ProviderContext
from kiln.providers.registry import get_provider
from kiln.router.client import RouterClient
from kiln.router.process import ensure_router
from kiln.spec import Spec, load_spec
from kiln.store import Store

SPEC_NAME = "kiln.yaml"


@dataclass
class Context:
    spec: Spec
    spec_path: Path
    state_dir: Path
    store: Store
    # A dict of its own: the controller adds the secrets a succeeded job brought.
    environ: dict[str, str]
    actor: str
    reporter: Reporter = field(default_factory=SilentReporter)
    # Set by the env lock when its lease could not be renewed: stop driving at once.
    lease_lost: threading.Event = field(default_factory=threading.Event)
    _providers: dict[str, Provider] = field(default_factory=dict)
    _router: RouterClient | None = None
    _webhooks: dict[str, Webhook] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return self.spec.app

    @property
    def spec_dir(self) -> Path:
        return self.spec_path.parent

    def provider(self, env: str) -> Provider:
        """The provider of ``env``, connected (an unreachable engine fails here, first)."""
        if env not in self._providers:
            spec = self.spec.environments[env]
            options: dict[str, object] = {"environ": self.environ}
            if spec.docker is not None and spec.docker.host:
                options["host"] = spec.docker.host
            ctx = ProviderContext(state_dir=self.state_dir, app=self.app, options=options)
            self._providers[env] = get_provider(spec.provider, ctx)
        return self._providers[env]

    def router(self) -> RouterClient:
        """The router of this state directory, started if it is not running."""
        if self._router is None:
            self._router = ensure_router(self.state_dir)
        return self._router

    def event(self, action: str, env: str, reason: str = "", **detail: Any) -> Event:
        return self.store.append_event(
            actor=self.actor, action=action, app=self.app, env=env, reason=reason, detail=detail
        )

    def notify(self, env: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to the environment's webhook, if it has one (never blocks)."""
        spec = self.spec.environments[env].notify
        if spec is None:
            return
        if env not in self._webhooks:
            self._webhooks[env] = Webhook(spec.webhook, on_give_up=self.reporter.info)
        self._webhooks[env].send({"app": self.app, "env": env, **payload})

    def close(self) -> None:
        for webhook in self._webhooks.values():
            webhook.close()  # bounded: a dead receiver delays exit by seconds, not forever
        self.store.close()


def find_spec(spec: Path | None) -> Path:
    path = spec if spec is not None else Path.cwd() / SPEC_NAME
    if path.is_dir():
        path = path / SPEC_NAME
    if not path.is_file():
        raise SpecError(f"no {SPEC_NAME} here (run `kiln init`, or pass --spec)", file=str(path))
    return path.resolve()


def state_dir_for(spec_path: Path, state: Path | None, environ: Mapping[str, str]) -> Path:
    if state is not None:
        return state.resolve()
    if environ.get("KILN_STATE"):
        return Path(environ["KILN_STATE"]).resolve()
    return spec_path.parent / ".kiln"


def actor_from(environ: Mapping[str, str]) -> str:
    user = environ.get("KILN_ACTOR") or environ.get("USER")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid{os.getuid()}"
    return user if "@" in user else f"{user}@{socket.gethostname()}"


def open_context(
    *,
    spec: Path | None = None,
    state: Path | None = None,
    environ: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
) -> Context:
    env = dict(os.environ if environ is None else environ)
    spec_path = find_spec(spec)
    loaded = load_spec(spec_path)
    state_dir = state_dir_for(spec_path, state, env)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KilnError(f"cannot create state directory {state_dir}: {e.strerror}") from e
    store = Store.open(state_dir / "kiln.db")
    return Context(
        spec=loaded,
        spec_path=spec_path,
        state_dir=state_dir,
        store=store,
        environ=env,
        actor=actor_from(env),
        reporter=reporter or SilentReporter(),
    )

"""Artifacts on a Docker engine: images, identified by their image ID.

``bake`` turns a build context into an image through the engine API, or
resolves a prebuilt reference (``name:tag`` or ``name@sha256:...``) to the ID
of the image it names, once. The ID (``sha256:<hex>``, the digest of the
image's config) is what a release records and what every container is created
from; tags are written for humans only and never read back.

Skip-rebake: the digest of the build inputs (the files the engine would be sent,
honouring ``.dockerignore``, plus the Dockerfile's name and content) is stored
as the image label ``kiln.build-digest``; an image carrying it is reused without
building. The inputs digest cannot see a base image that moved under an
unchanged ``FROM`` tag: pin base images by digest for that.

This module must never remove or retag an image it did not just build or
resolve, and never return a tag in place of an ID.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from kiln.errors import PermanentProviderError
from kiln.model import ArtifactSource, canonical_digest
from kiln.providers.docker.client import engine_call, is_not_found, sdk, translate
from kiln.providers.tree_digest import manifest_digest, scan

BUILD_LABEL = "kiln.build-digest"
BUILD_TIMEOUT = 3600  # seconds one read of the build stream may wait (a slow RUN step)
PULL_TIMEOUT = 30

_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")


def is_image_id(digest: str) -> bool:
    return _IMAGE_ID.match(digest) is not None


def _dockerignore(context: Path) -> list[str]:
    # Parsed exactly as the SDK parses it when it packs the context.
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_inputs_digest(context: Path, dockerfile: str) -> str:
    """Digest of what a build of ``context`` is made from (see the module docstring)."""
    exclude_paths = sdk().utils.build.exclude_paths
    included: set[str] = set(exclude_paths(str(context), _dockerignore(context), dockerfile))
    # Directories holding an included path; the rest (.git, node_modules, ...
    # when ignored) are not even read.
    wanted_dirs = {p.rsplit("/", i)[0] for p in included for i in range(1, p.count("/") + 1)}
    manifest = scan(context, skip=lambda path, _name: path not in wanted_dirs)
    context_digest = manifest_digest({p: e for p, e in manifest.items() if p in included})
    # The Dockerfile may lie outside the context (the SDK then sends it along),
    # so its content counts on its own.
    content = (context / dockerfile).read_bytes()
    return canonical_digest(
        {"context": context_digest, "dockerfile": dockerfile, "content": content.hex()}
    )


def _repository(app: str, service: str) -> str:
    # Repository names are lowercase [a-z0-9] words joined by separators.
    name = _NOT_NAME_CHARS.sub("-", f"{app}-{service}".lower()).strip("-")
    return f"kiln/{name or 'app'}"


def _check_context(service: str, source: ArtifactSource) -> tuple[Path, str]:
    assert source.build is not None
    context = source.build
    dockerfile = source.dockerfile or "Dockerfile"
    if not context.is_dir():
        raise PermanentProviderError(
            f"service {service}: build context {context} does not exist or is not a directory"
        )
    if not (context / dockerfile).is_file():
        raise PermanentProviderError(
            f"service {service}: no Dockerfile at {context / dockerfile} (set dockerfile:)"
        )
    return context, dockerfile


def _find_built(client: Any, inputs: str) -> str | None:
    ids: list[str] = client.api.images(filters={"label": f"{BUILD_LABEL}={inputs}"}, quiet=True)
    return ids[0] if ids else None


def bake(client: Any, app: str, service: str, source: ArtifactSource) -> str:
    """The image ID of ``source``: built (or reused) for ``build``, resolved for ``image``."""
    if source.build is None:
        if not source.image:
            raise PermanentProviderError(f"service {service}: neither build nor image is set")
        return resolve(client, source.image)
    context, dockerfile = _check_context(service, source)
    try:
        inputs = build_inputs_digest(context, dockerfile)
    except OSError as exc:
        raise PermanentProviderError(
            f"service {service}: cannot read build context {context}: {exc}"
        ) from exc
    with engine_call(f"service {service}: build"):
        image_id = _find_built(client, inputs) or _build(
            client, service, context, dockerfile, inputs
        )
        client.api.tag(image_id, _repository(app, service), image_id.removeprefix("sha256:")[:12])
    return image_id


def _build(client: Any, service: str, context: Path, dockerfile: str, inputs: str) -> str:
    image_id: str | None = None
    last = "(no build output)"
    stream = client.api.build(
        path=str(context),
        dockerfile=dockerfile,
        labels={BUILD_LABEL: inputs},
        rm=True,
        forcerm=True,  # no intermediate containers left behind by a failed step
        pull=False,  # base images come from the engine's store; no registry needed
        decode=True,
        timeout=BUILD_TIMEOUT,
    )
    for chunk in stream:
        if "error" in chunk:
            message = " ".join(str(chunk["error"]).split())
            raise PermanentProviderError(f"service {service}: build failed: {message}")
        text = str(chunk.get("stream", "")).strip()
        if text:
            last = text.splitlines()[-1]
        aux = chunk.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            image_id = aux["ID"]
    if image_id is None or not is_image_id(image_id):
        raise PermanentProviderError(f"service {service}: build produced no image: {last}")
    return image_id


def resolve(client: Any, ref: str) -> str:
    """The ID of the image ``ref`` names; pulled once (short timeout) if absent."""
    found = _inspect_id(client, ref)
    if found is not None:
        return found
    _pull(client, ref)
    found = _inspect_id(client, ref)
    if found is None:
        raise PermanentProviderError(f"image {ref} not found after pulling it")
    return found


def _pull(client: Any, ref: str) -> None:
    # The SDK's pull has no timeout of its own, so it runs in a helper thread
    # that is abandoned (the engine finishes or fails it) after PULL_TIMEOUT.
    failure: list[BaseException] = []

    def pull() -> None:
        try:
            client.api.pull(ref)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=pull, name=f"kiln-pull {ref}", daemon=True)
    worker.start()
    worker.join(PULL_TIMEOUT)
    if worker.is_alive():
        raise PermanentProviderError(
            f"image {ref} not found locally, and pulling it took over {PULL_TIMEOUT}s"
        )
    if failure:
        exc = failure[0]
        reason = translate(exc, "pull") if isinstance(exc, Exception) else exc
        raise PermanentProviderError(
            f"image {ref} not found locally and could not be pulled: {reason}"
        ) from exc


def _inspect_id(client: Any, ref: str) -> str | None:
    with engine_call(f"image {ref}"):
        try:
            image_id: str = client.api.inspect_image(ref)["Id"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
    return image_id


def has_image(client: Any, digest: str) -> bool:
    # Only IDs count: a tag that happens to exist is not a pinned artifact.
    return is_image_id(digest) and _inspect_id(client, digest) == digest

"""The local provider: real processes, real /proc, real mount namespaces."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiln.errors import PermanentProviderError
from kiln.model import ArtifactSource, FileChange, Instance, Secret
from kiln.providers.base import FILE_CHANGES, LOGS, READ_ONLY_ARTIFACT, VOLUMES, Provider
from kiln.providers.local import LocalProvider, procfs

from .conftest import APP, ENV, make_fleet, make_spec, wait_for

MakeProvider = Callable[..., Provider]


@pytest.fixture
def local(make_provider: MakeProvider) -> LocalProvider:
    p = make_provider("local")
    assert isinstance(p, LocalProvider)
    return p


def _write_app(build_dir: Path, name: str, code: str) -> None:
    (build_dir / name).write_text(textwrap.dedent(code))


def _launch(
    p: Provider,
    build_dir: Path,
    command: tuple[str, ...] = (sys.executable, "server.py"),
    volumes: dict[str, str] | None = None,
) -> Instance:
    digest = p.bake("web", ArtifactSource(build=build_dir))
    [instance] = p.launch(make_fleet(digest), make_spec(digest, command, volumes=volumes), {}, 1)
    return instance


def _pid(instance: Instance) -> int:
    return int(instance.ref.split(":")[0])


def _log(state: Path, instance: Instance) -> Path:
    return state / "logs" / instance.env / instance.service / f"{instance.id}.log"


def _tree(build: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        (build / rel).write_text(text)


# -- artifacts ---------------------------------------------------------------


def test_digest_ignores_order_mtime_and_skipped_dirs(local: LocalProvider, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"x.txt": "x", "sub/y.txt": "y", "sub/deep/z": "z"}
    _tree(a, files)
    _tree(b, dict(reversed(files.items())))  # written in the other order
    os.utime(b / "x.txt", (1_000_000, 1_000_000))
    (b / "empty-dir").mkdir()
    _tree(b, {".git/HEAD": "ref", "sub/__pycache__/y.pyc": "c", ".kiln/db": "state"})
    assert local.bake("web", ArtifactSource(build=a)) == local.bake("web", ArtifactSource(build=b))


@pytest.mark.parametrize("mutation", ["content", "exec-bit", "new-file", "rename", "symlink"])
def test_digest_changes_with_content(local: LocalProvider, tmp_path: Path, mutation: str) -> None:
    build = tmp_path / "b"
    _tree(build, {"run.sh": "echo hi\n", "lib/a.txt": "a"})
    os.symlink("lib/a.txt", build / "link")
    before = local.bake("web", ArtifactSource(build=build))
    if mutation == "content":
        (build / "lib/a.txt").write_text("A")
    elif mutation == "exec-bit":
        (build / "run.sh").chmod(0o755)
    elif mutation == "new-file":
        (build / "lib/b.txt").write_text("")
    elif mutation == "rename":
        (build / "lib/a.txt").rename(build / "lib/c.txt")
    else:
        (build / "link").unlink()
        os.symlink("run.sh", build / "link")
    assert local.bake("web", ArtifactSource(build=build)) != before


def test_bake_is_idempotent_and_read_only(local: LocalProvider, tmp_path: Path) -> None:
    build = tmp_path / "b"
    _tree(build, {"app.py": "print(1)", "static/i.css": "body{}"})
    (build / "app.py").chmod(0o755)
    digest = local.bake("web", ArtifactSource(build=build))
    art = local.root / "artifacts" / digest.removeprefix("sha256:")
    assert local.bake("web", ArtifactSource(build=build)) == digest
    assert sorted(p.name for p in (local.root / "artifacts").iterdir()) == [
        art.name,
        f"{art.name}.json",  # the manifest; no leftover temp dirs
    ]
    assert (art / "app.py").read_text() == "print(1)"
    for path in [art, art / "static", art / "app.py", art / "static/i.css"]:
        assert path.stat().st_mode & 0o222 == 0, path
    assert (art / "app.py").stat().st_mode & 0o111
    assert not (art / "static/i.css").stat().st_mode & 0o111
    manifest = json.loads((art.parent / f"{art.name}.json").read_text())
    assert set(manifest) == {"app.py", "static/i.css"}


def test_bake_copies_symlinks_without_following(local: LocalProvider, tmp_path: Path) -> None:
    build = tmp_path / "b"
    _tree(build, {"a.txt": "a"})
    os.symlink("/etc/passwd", build / "outside")
    digest = local.bake("web", ArtifactSource(build=build))
    art = local.root / "artifacts" / digest.removeprefix("sha256:")
    assert os.readlink(art / "outside") == "/etc/passwd"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bake_rejects_a_bad_build_dir(local: LocalProvider, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope"
    if kind == "file":
        path.write_text("")
    with pytest.raises(PermanentProviderError, match=str(path)):
        local.bake("web", ArtifactSource(build=path))


# -- launch and its environment -----------------------------------------------


def test_launch_serves_on_its_port(local: LocalProvider, build_dir: Path) -> None:
    instance = _launch(local, build_dir)
    host, _, port = instance.address.partition(":")
    assert host == "127.0.0.1"

    def body() -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://{instance.address}/", timeout=1) as r:
                return bytes(r.read())
        except OSError:
            return None

    wait_for(body)
    assert body() == b"ok"
    # Only once it serves: until its exec, a fresh process shows its parent's environ.
    assert procfs.read_environ(_pid(instance))["PORT"] == port  # type: ignore[index]
    rec = json.loads((local.root / "instances" / ENV / f"{instance.id}.json").read_text())
    assert rec["pid"] == _pid(instance)
    assert f"{rec['pid']}:{rec['start_time']}" == instance.ref
    assert rec["address"] == instance.address


def test_environment_is_clean_and_labelled(
    local: LocalProvider, build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_TEST_LEAK", "x")
    monkeypatch.setenv("LANG", "C.UTF-8")
    digest = local.bake("web", ArtifactSource(build=build_dir))
    fleet = make_fleet(digest, release=7)
    spec = make_spec(digest, env={"GREETING": "hi", "PORT": "1"}, volumes={"data-dir": "/data"})
    [instance] = local.launch(fleet, spec, {"DB_PASSWORD": Secret("db", "s3cret")}, 1)
    # Read it once the server runs: in the sandbox the pid first runs unshare and sh.
    wait_for(lambda: "listening" in _log(local.root, instance).read_text())
    env = procfs.read_environ(_pid(instance))
    assert env is not None
    scratch = local.root / "scratch" / instance.id
    volume = local.root / "volumes" / ENV / "data-dir"
    assert "KILN_TEST_LEAK" not in env
    assert env == {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "GREETING": "hi",
        "DB_PASSWORD": "s3cret",
        "PORT": instance.address.rpartition(":")[2],  # kiln's PORT wins over spec.env
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "KILN_VOLUME_DATA_DIR": str(volume),
        "KILN_STATE_ID": local.state_id,
        "KILN_APP": APP,
        "KILN_ENV": ENV,
        "KILN_SERVICE": "web",
        "KILN_RELEASE": "7",
        "KILN_FLEET": fleet.id,
        "KILN_INSTANCE": instance.id,
        "KILN_ARTIFACT": digest,
        "KILN_CONFIG": spec.config_digest(),
    }
    assert instance.id.startswith(f"{fleet.id}.")
    assert scratch.is_dir()
    assert volume.is_dir()


def test_scratch_removed_on_destroy_log_kept(local: LocalProvider, build_dir: Path) -> None:
    instance = _launch(local, build_dir)
    scratch = local.root / "scratch" / instance.id
    assert scratch.is_dir()
    wait_for(lambda: _log(local.root, instance).read_text())
    local.destroy(instance, grace=2)
    assert not scratch.exists()
    assert not (local.root / "instances" / ENV / f"{instance.id}.json").exists()
    assert "listening" in _log(local.root, instance).read_text()


def test_writable_files_are_read_from_the_scratch_dir_only(
    local: LocalProvider, build_dir: Path, tmp_path: Path
) -> None:
    instance = _launch(local, build_dir)
    scratch = local.root / "scratch" / instance.id
    (scratch / "notes").mkdir()
    (scratch / "notes" / "todo.txt").write_text("left behind\n")
    (scratch / "big.bin").write_bytes(b"\0" * 5000)
    (tmp_path / "secret").write_text("outside")
    (scratch / "link").symlink_to(tmp_path / "secret")  # never followed out of scratch
    assert local.writable_files(instance, limit=100, most=10) == [
        ("scratch/big.bin", b"\0" * 100),
        ("scratch/notes/todo.txt", b"left behind\n"),
    ]
    assert len(local.writable_files(instance, limit=100, most=1)) == 1
    local.destroy(instance, grace=2)
    assert local.writable_files(instance, limit=100, most=10) == []


def test_volume_persists_across_instances(local: LocalProvider, build_dir: Path) -> None:
    _write_app(
        build_dir,
        "vol.py",
        """\
        import os, pathlib, time
        f = pathlib.Path(os.environ["KILN_VOLUME_DATA"]) / "counter"
        n = int(f.read_text()) + 1 if f.exists() else 1
        f.write_text(str(n))
        print("run", n, flush=True)
        time.sleep(60)
        """,
    )
    cmd = (sys.executable, "vol.py")
    first = _launch(local, build_dir, cmd, volumes={"data": "/data"})
    wait_for(lambda: "run 1" in _log(local.root, first).read_text())
    local.destroy(first, grace=2)
    second = _launch(local, build_dir, cmd, volumes={"data": "/data"})
    wait_for(lambda: "run" in _log(local.root, second).read_text())
    assert "run 2" in _log(local.root, second).read_text()
    local.remove_volumes(ENV)
    assert not (local.root / "volumes" / ENV).exists()


# -- observe: adoption and identity ---------------------------------------------


@pytest.mark.parametrize("record", ["deleted", "without-pid"])
def test_observe_adopts_unrecorded_processes(
    local: LocalProvider, make_provider: MakeProvider, build_dir: Path, record: str
) -> None:
    instance = _launch(local, build_dir)
    path = local.root / "instances" / ENV / f"{instance.id}.json"
    if record == "deleted":
        path.unlink()
    else:  # as if kiln died between spawn and the second write of the record
        path.write_text(json.dumps({**json.loads(path.read_text()), "pid": None}))
    fresh = make_provider("local")  # a restarted controller
    [found] = fresh.observe(ENV)
    assert found.alive
    assert (found.id, found.ref, found.address, found.fleet, found.release) == (
        instance.id,
        instance.ref,
        instance.address,
        instance.fleet,
        instance.release,
    )
    assert found.labels["artifact"] == instance.labels["artifact"]
    fresh.destroy(found, grace=2)
    assert not procfs.is_running(_pid(instance), int(instance.ref.split(":")[1]))
    assert fresh.observe(ENV) == []


def test_other_state_dirs_do_not_see_each_other(
    local: LocalProvider, make_provider: MakeProvider, build_dir: Path, tmp_path: Path
) -> None:
    _launch(local, build_dir)
    other = make_provider("local", state_dir=tmp_path / "other-state")
    assert other.observe(ENV) == []
    assert len(local.observe(ENV)) == 1


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_reused_pid_is_a_dead_instance_and_is_not_killed(
    local: LocalProvider, build_dir: Path, bystander: subprocess.Popen[bytes]
) -> None:
    instance = _launch(local, build_dir)
    local.destroy(instance, grace=2)
    # Forge what pid reuse looks like: the record's pid now runs something else.
    real = procfs.read_stat(bystander.pid)
    assert real is not None
    record = local.root / "instances" / ENV / f"{instance.id}.json"
    data = {**_record_of(instance), "pid": bystander.pid}
    data["start_time"] = real.start_time - 1
    record.write_text(json.dumps(data))

    [dead] = local.observe(ENV)
    assert (dead.id, dead.alive) == (instance.id, False)
    assert dead.ref == f"{bystander.pid}:{real.start_time - 1}"
    local.destroy(dead, grace=0.2)
    time.sleep(0.1)
    assert bystander.poll() is None  # still running: never signalled
    assert not record.exists()


def _record_of(instance: Instance) -> dict[str, object]:
    return {
        "id": instance.id,
        "app": instance.app,
        "env": instance.env,
        "service": instance.service,
        "fleet": instance.fleet,
        "release": instance.release,
        "artifact": instance.labels["artifact"],
        "port": int(instance.address.rpartition(":")[2]),
        "address": instance.address,
        "created_at": "2020-01-01T00:00:00+00:00",
    }


def test_dead_instance_stays_visible_until_destroyed(local: LocalProvider, build_dir: Path) -> None:
    instance = _launch(local, build_dir, (sys.executable, "-c", "print('bye')"))
    wait_for(lambda: not local.observe(ENV)[0].alive)
    local.destroy(instance, grace=1)
    assert local.observe(ENV) == []


# -- destroy ------------------------------------------------------------------


def test_destroy_escalates_to_sigkill_and_is_idempotent(
    local: LocalProvider, build_dir: Path
) -> None:
    _write_app(
        build_dir,
        "stubborn.py",
        """\
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    instance = _launch(local, build_dir, (sys.executable, "stubborn.py"))
    wait_for(lambda: "ready" in _log(local.root, instance).read_text())
    started = time.monotonic()
    local.destroy(instance, grace=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    pid, start = map(int, instance.ref.split(":"))
    assert not procfs.is_running(pid, start)
    local.destroy(instance, grace=0.3)  # already gone: not an error
    assert local.observe(ENV) == []


def test_destroy_signals_the_whole_process_group(local: LocalProvider, build_dir: Path) -> None:
    _write_app(
        build_dir,
        "forks.py",
        """\
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid, flush=True)
        time.sleep(60)
        """,
    )
    instance = _launch(local, build_dir, (sys.executable, "forks.py"))
    wait_for(lambda: "child" in _log(local.root, instance).read_text())
    child = int(_log(local.root, instance).read_text().split()[-1])
    local.destroy(instance, grace=2)
    wait_for(lambda: (st := procfs.read_stat(child)) is None or not st.running)


def test_survives_the_parent_exiting(local: LocalProvider, build_dir: Path, tmp_path: Path) -> None:
    digest = local.bake("web", ArtifactSource(build=build_dir))
    script = textwrap.dedent(
        f"""\
        from pathlib import Path
        from tests.providers.conftest import make_fleet, make_spec
        from kiln.providers.base import ProviderContext
        from kiln.providers.local import LocalProvider
        p = LocalProvider(ProviderContext(Path({str(local.root)!r}), "shop", {{}}))
        [i] = p.launch(make_fleet({digest!r}), make_spec({digest!r}), {{}}, 1)
        print(i.ref)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    ref = out.stdout.strip()
    time.sleep(0.2)  # the launcher is gone; its child must not be
    [instance] = local.observe(ENV)
    assert (instance.ref, instance.alive) == (ref, True)


# -- sandbox ------------------------------------------------------------------


def test_capabilities(local: LocalProvider, make_provider: MakeProvider) -> None:
    assert {FILE_CHANGES, VOLUMES, LOGS} <= local.capabilities
    off = make_provider("local", sandbox="off")
    assert READ_ONLY_ARTIFACT not in off.capabilities
    with pytest.raises(PermanentProviderError, match="sandbox"):
        make_provider("local", sandbox="maybe")


@pytest.mark.skipif(os.geteuid() != 0, reason="the mount namespace needs root")
def test_artifact_is_read_only_even_for_root(local: LocalProvider, build_dir: Path) -> None:
    assert shutil.which("unshare"), "this machine has unshare: the sandbox must be in use"
    assert READ_ONLY_ARTIFACT in local.capabilities
    _write_app(
        build_dir,
        "tamper.py",
        """\
        import os, time
        for name, mode in [("tamper.py", "a"), ("new.txt", "w")]:
            try:
                open(name, mode).write("x")
                print(name, "written", flush=True)
            except OSError as e:
                print(name, "errno", e.errno, flush=True)
        print("cwd", os.getcwd(), flush=True)
        time.sleep(60)
        """,
    )
    instance = _launch(local, build_dir, (sys.executable, "tamper.py"))
    log = _log(local.root, instance)
    wait_for(lambda: "cwd" in log.read_text())
    text = log.read_text()
    assert f"tamper.py errno {errno.EROFS}" in text
    assert f"new.txt errno {errno.EROFS}" in text
    assert local.changes(instance) == []
    # The sandbox keeps the pid kiln recorded: unshare and sh exec, never fork.
    assert os.readlink(f"/proc/{_pid(instance)}/exe") == os.path.realpath(sys.executable)
    assert f"cwd {local.root / 'artifacts'}" in text


def test_changes_reports_tampering(local: LocalProvider, build_dir: Path) -> None:
    instance = _launch(local, build_dir)
    assert local.changes(instance) == []
    art = local.root / "artifacts" / instance.labels["artifact"].removeprefix("sha256:")
    # Tamper through the host path (bypassing the namespace), as root would.
    (art / "server.py").chmod(0o644)
    (art / "server.py").write_text("print('pwned')")
    art.chmod(0o755)
    (art / "backdoor.sh").write_text("")
    assert local.changes(instance) == [
        FileChange("backdoor.sh", "added"),
        FileChange("server.py", "changed"),
    ]
    (art / "server.py").unlink()
    assert FileChange("server.py", "deleted") in local.changes(instance)


def test_a_tampered_artifact_never_launches_and_a_bake_restores_it(
    local: LocalProvider, build_dir: Path
) -> None:
    digest = local.bake("web", ArtifactSource(build=build_dir))
    art = local.root / "artifacts" / digest.removeprefix("sha256:")
    (art / "server.py").chmod(0o644)
    (art / "server.py").write_text("print('pwned')")
    assert not local.has_artifact(digest)
    with pytest.raises(PermanentProviderError, match="changed since it was baked"):
        local.launch(make_fleet(digest), make_spec(digest), {}, 1)

    # Baking the same build dir again puts the artifact back; the tampered copy is kept.
    assert local.bake("web", ArtifactSource(build=build_dir)) == digest
    assert local.has_artifact(digest)
    [aside] = (local.root / "artifacts").glob("*.tampered-*")
    assert (aside / "server.py").read_text() == "print('pwned')"
    assert (art / "server.py").read_text() == (build_dir / "server.py").read_text()


# -- logs ---------------------------------------------------------------------


def test_logs_tail_and_follow(local: LocalProvider, build_dir: Path) -> None:
    _write_app(
        build_dir,
        "chatty.py",
        """\
        import sys, time
        for n in range(5):
            print("line", n, flush=True)
        time.sleep(0.5)
        print("later", flush=True)
        time.sleep(60)
        """,
    )
    instance = _launch(local, build_dir, (sys.executable, "chatty.py"))
    wait_for(lambda: "line 4" in _log(local.root, instance).read_text())
    assert list(local.logs(ENV, "web", tail=2)) == [
        f"{instance.id} | line 3",
        f"{instance.id} | line 4",
    ]
    assert list(local.logs(ENV, "web", tail=0)) == []
    follow = local.logs(ENV, "web", follow=True, tail=1)
    assert next(follow) == f"{instance.id} | line 4"
    assert next(follow) == f"{instance.id} | later"
    follow.close()
    assert list(local.logs(ENV, "other")) == []


@pytest.mark.parametrize("program", ["no-such-program-kiln", "./missing.sh", "/nonexistent/x"])
def test_launch_rejects_a_missing_command(
    local: LocalProvider, build_dir: Path, program: str
) -> None:
    with pytest.raises(PermanentProviderError, match="not found"):
        _launch(local, build_dir, (program,))
    assert local.observe(ENV) == []
    assert list((local.root / "instances").glob("*/*.json")) == []


def test_launch_rejects_unbaked_artifact(local: LocalProvider) -> None:
    digest = "sha256:" + "a" * 64
    with pytest.raises(PermanentProviderError, match="not baked"):
        local.launch(make_fleet(digest), make_spec(digest), {}, 1)
    assert local.observe(ENV) == []

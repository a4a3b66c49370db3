"""Spec validation: the issue's example validates; every error names line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import NotFound, SpecError
from kiln.spec import json_schema, load_spec, parse_spec
from kiln.spec.durations import parse_duration

EXAMPLE = (Path(__file__).parents[2] / "examples" / "hello" / "kiln.yaml").read_text()


def test_issue_example_validates_with_resolved_values() -> None:
    spec = parse_spec(EXAMPLE)
    web = spec.service("dev", "web")
    assert spec.app == "hello"
    assert web.replicas == 3
    assert web.health.interval == 1.0
    assert web.health.start_timeout == 30.0
    assert web.strategy.retain_previous == 600.0
    assert web.volumes == {"uploads": "/data/uploads"}
    assert spec.environments["dev"].routes == {"web": "127.0.0.1:8080"}


def test_starter_written_by_init_is_the_example() -> None:
    starter = Path(__file__).parents[2] / "src" / "kiln" / "starter"
    example = Path(__file__).parents[2] / "examples" / "hello"
    for name in ("kiln.yaml", "app/server.py", "app/VERSION"):
        assert (starter / name).read_bytes() == (example / name).read_bytes(), name


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("port: 8000", "port: 80000", "kiln.yaml:6: services.web.port: Input should be less"),
        (
            "replicas: 3",
            "replicas: 3\n    colour: red",
            "kiln.yaml:8: services.web.colour: unknown",
        ),
        ("interval: 1s", "interval: soon", "kiln.yaml:10: services.web.health.interval: must be"),
        (
            'routes: {web: "127.0.0.1:8080"}',
            'routes: {api: "127.0.0.1:8080"}',
            "kiln.yaml:16: environments.dev.routes.api: unknown service 'api'",
        ),
        ("replicas: 3", "replicas: 0", "kiln.yaml:7: services.web.replicas: Input should be"),
        ("secrets: [API_TOKEN]", "secrets: [api-token]", "kiln.yaml:9: services.web.secrets[0]:"),
        ("app: hello", "app: Hello World", "kiln.yaml:1: app: String should match"),
        ("uploads: /data/uploads", "uploads: data/uploads", "kiln.yaml:11: services.web.volumes"),
        (
            "    provider: local",
            "    provider: local\n    extra: 1",
            "kiln.yaml:16: environments.dev.extra",
        ),
        ("type: blue-green", "type: purple", "kiln.yaml:12: services.web.strategy.type"),
    ],
)
def test_errors_name_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in EXAMPLE
    with pytest.raises(SpecError) as info:
        parse_spec(EXAMPLE.replace(old, new, 1))
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


def test_missing_field_points_at_its_parent() -> None:
    text = EXAMPLE.replace("app: hello\n", "")
    with pytest.raises(SpecError, match=r"^kiln.yaml:1: app: required field is missing"):
        parse_spec(text)


def test_a_service_needs_build_or_image_not_both() -> None:
    with pytest.raises(SpecError, match=r"^kiln.yaml:3: services.web: needs exactly one of"):
        parse_spec(
            EXAMPLE.replace(
                "    build: ./app                  # directory baked into an immutable artifact\n",
                "",
            )
        )
    with pytest.raises(SpecError, match=r"^kiln.yaml:3: services.web: needs exactly one of"):
        parse_spec(EXAMPLE.replace("build: ./app", "build: ./app\n    image: busybox:1"))
    image_only = EXAMPLE.replace("build: ./app", "image: hello@sha256:" + "a" * 64)
    assert parse_spec(image_only).services["web"].image == "hello@sha256:" + "a" * 64


def test_strict_pinning_refuses_tags() -> None:
    tagged = EXAMPLE.replace("build: ./app", "image: hello:latest").replace(
        "    provider: local", "    provider: docker\n    pin: strict"
    )
    with pytest.raises(
        SpecError,
        match=r"^kiln.yaml:4: services.web.image: environment dev "
        r"has pin: strict; pin the image by digest \(hello@sha256:...\)",
    ):
        parse_spec(tagged)
    pinned = tagged.replace("hello:latest", "hello@sha256:" + "b" * 64)
    assert parse_spec(pinned).environments["dev"].pin == "strict"


def test_container_settings() -> None:
    spec = parse_spec(
        EXAMPLE.replace(
            "replicas: 3",
            "replicas: 3\n    cap_add: [NET_BIND_SERVICE]\n    cpus: 0.5\n"
            "    memory: 256m\n    network: host",
        )
    )
    web = spec.services["web"]
    assert (web.cap_add, web.cpus, web.memory, web.network) == (
        ["NET_BIND_SERVICE"],
        0.5,
        "256m",
        "host",
    )
    with pytest.raises(SpecError, match=r"services.web.memory"):
        parse_spec(EXAMPLE.replace("replicas: 3", "replicas: 3\n    memory: lots"))


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(SpecError, match=r"^kiln.yaml:\d+: invalid YAML"):
        parse_spec("app: hello\nservices: [\n")


def test_file_name_is_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kiln.yaml"
    path.write_text(EXAMPLE.replace("port: 8000", "port: x"))
    with pytest.raises(SpecError, match=rf"^{path}:6: services.web.port"):
        load_spec(path)
    monkeypatch.chdir(tmp_path)  # under the working directory: the short name
    with pytest.raises(SpecError, match=r"^kiln.yaml:6: services.web.port"):
        load_spec(path)


def test_environment_overrides_merge_env_and_replace_fields() -> None:
    text = EXAMPLE + (
        "  prod:\n"
        '    routes: {web: "127.0.0.1:9090"}\n'
        "    services:\n"
        '      web: {replicas: 5, env: {EXTRA: "1", GREETING: hi}}\n'
    )
    spec = parse_spec(text)
    prod = spec.service("prod", "web")
    assert prod.replicas == 5
    assert prod.env == {"GREETING": "hi", "EXTRA": "1"}
    assert spec.service("dev", "web").replicas == 3


def test_env_selection() -> None:
    one = parse_spec(EXAMPLE)
    assert one.select_env(None) == "dev"
    two = parse_spec(EXAMPLE + '  prod:\n    routes: {web: "127.0.0.1:9090"}\n')
    with pytest.raises(SpecError, match="choose one with -e/--env"):
        two.select_env(None)
    with pytest.raises(NotFound, match="unknown environment 'qa'"):
        two.select_env("qa")


def test_digest_ignores_comments_and_formatting() -> None:
    a = parse_spec(EXAMPLE)
    b = parse_spec("# a comment\n" + EXAMPLE.replace("replicas: 3", "replicas:    3   # three"))
    c = parse_spec(EXAMPLE.replace("replicas: 3", "replicas: 4"))
    assert a.digest() == b.digest() != c.digest()


def test_env_values_become_strings() -> None:
    spec = parse_spec(EXAMPLE.replace("{GREETING: hello}", "{DEBUG: 1, ON: true}"))
    assert spec.service("dev", "web").env == {"DEBUG": "1", "ON": "true"}


def test_json_schema_describes_the_spec() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == {"app", "services", "environments"}
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("10m", 600.0), ("1h30m", 5400.0), (3, 3.0), ("2.5s", 2.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "1x", "", True, -1, "s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "interval: 1s",
            "interval: 0s",
            "kiln.yaml:10: services.web.health.interval: Input should be greater than 0",
        ),
        ("{GREETING: hello}", "{PORT: '1'}", "kiln.yaml:8: services.web.env: PORT is set by kiln"),
        (
            "{GREETING: hello}",
            "{KILN_APP: x}",
            "kiln.yaml:8: services.web.env: KILN_APP is set by kiln",
        ),
        (
            "{GREETING: hello}",
            "{API_TOKEN: x}",
            "kiln.yaml:9: services.web.secrets: API_TOKEN is both",
        ),
    ],
)
def test_semantic_errors(old: str, new: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(EXAMPLE.replace(old, new, 1))
    assert str(info.value).startswith(expected), str(info.value)


def test_two_routes_on_one_address_are_refused() -> None:
    text = EXAMPLE + '  prod:\n    routes: {web: "127.0.0.1:8080"}\n'
    with pytest.raises(
        SpecError,
        match=r"^kiln.yaml:18: environments.prod.routes.web: "
        r"127.0.0.1:8080 is already the route of environments.dev.routes.web",
    ):
        parse_spec(text)


def test_secret_names_follow_an_environments_overrides() -> None:
    text = EXAMPLE + (
        "  prod:\n"
        "    provider: local\n"
        "    services:\n"
        "      web: {secrets: [API_TOKEN, DB_PASSWORD]}\n"
    )
    spec = parse_spec(text)
    assert spec.secret_names("dev") == {"API_TOKEN"}
    assert spec.secret_names("prod") == {"API_TOKEN", "DB_PASSWORD"}

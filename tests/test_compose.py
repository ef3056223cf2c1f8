"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.cli.main import build_parser
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
CRACKQ_SERVICES = ("migrate", "inference", "training", "flower", "console")
WORKERS = ("inference", "training")
# Laptop-only defaults, documented in the compose file's header; anything else is a leak.
DOCUMENTED_DEFAULTS = {"crackq-local", "crackq:crackq-local", "crackq:operator:crackq-local"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _resolved(value: str) -> str:
    """The value Compose would use with none of the variables set."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [str(k), *_strings(v)]]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also reads Compose's `!reset` merge tag."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: "!reset")


def test_every_service_is_defined() -> None:
    assert set(SERVICES) == {"redis", "postgres", *CRACKQ_SERVICES, "prometheus", "grafana"}


@pytest.mark.parametrize(
    ("service", "command", "queues"),
    [
        ("migrate", "migrate", None),
        ("inference", "worker", "inference"),
        ("training", "worker", "training"),
        ("flower", "flower", None),
        ("console", "ui", None),
    ],
)
def test_commands_are_real_crackq_subcommands(
    service: str, command: str, queues: str | None
) -> None:
    argv = SERVICES[service]["command"]
    args = build_parser().parse_args(argv)  # the image's ENTRYPOINT is `crackq`
    assert args.command == command
    if queues is not None:
        assert args.queues == queues
    assert SERVICES[service]["image"] == SERVICES["migrate"]["image"]


def test_migrate_runs_once_before_the_workers() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in WORKERS:
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    for name in ("redis", "postgres", *WORKERS, "flower"):
        assert SERVICES[name]["restart"] == "unless-stopped"


def test_redis_persists_to_a_named_volume() -> None:
    redis = SERVICES["redis"]
    command = [str(c) for c in redis["command"]]
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] == "everysec"
    assert pairs["--maxmemory-policy"] == "noeviction"
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in COMPOSE["volumes"]
    assert redis["healthcheck"]["test"]


def test_postgres_has_a_volume_and_a_healthcheck() -> None:
    postgres = SERVICES["postgres"]
    assert postgres["image"] == "postgres:16"
    source, target = postgres["volumes"][0].split(":")
    assert source in COMPOSE["volumes"] and target == "/var/lib/postgresql/data"
    assert "pg_isready" in postgres["healthcheck"]["test"][1]


def test_services_agree_on_passwords_users_and_hosts() -> None:
    command = SERVICES["redis"]["command"]
    redis_pass = _resolved(command[command.index("--requirepass") + 1])
    pg = {k: _resolved(v) for k, v in _env("postgres").items()}
    for name in CRACKQ_SERVICES:
        env = _env(name)
        assert _resolved(env["CRACKQ_BROKER_URL"]) == f"redis://:{redis_pass}@redis:6379/0"
        assert _resolved(env["CRACKQ_DATABASE_URL"]) == (
            f"postgresql+psycopg2://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{pg['POSTGRES_DB']}"
        )
        assert env["CRACKQ_EMBEDDED"] == "never"
    assert _resolved(_env("redis")["REDISCLI_AUTH"]) == redis_pass  # for the healthcheck
    assert "&crackq-env" in COMPOSE_TEXT  # one anchor holds the shared environment


def test_flower_requires_basic_auth_from_the_environment() -> None:
    flower = SERVICES["flower"]
    auth = INTERPOLATION.fullmatch(_env("flower")["CRACKQ_FLOWER_BASIC_AUTH"])
    assert auth is not None and auth.group(1) == "FLOWER_BASIC_AUTH"
    assert ":" in auth.group(2)  # even the laptop default is user:password, never empty
    assert "--unauthenticated-api" not in flower["command"]
    for path in ROOT.glob("docker-compose*.yml"):
        assert "UNAUTHENTICATED" not in path.read_text().upper(), path
    assert _env("flower")["CRACKQ_FLOWER_ADDRESS"] == "0.0.0.0"
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_inference_reserves_a_gpu_and_the_cpu_override_drops_it() -> None:
    devices = SERVICES["inference"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    override = yaml.load((ROOT / "docker-compose.cpu.yml").read_text(), Loader=_ComposeLoader)
    inference = override["services"]["inference"]
    assert inference["deploy"] == "!reset"
    assert inference["environment"]["CRACKQ_DEVICE"] == "cpu"


def test_workers_keep_their_own_data_and_read_images_read_only() -> None:
    data_volumes = []
    for name in WORKERS:
        env, volumes = _env(name), SERVICES[name]["volumes"]
        (data,) = [v for v in volumes if v.split(":")[1] == env["CRACKQ_DATA_DIR"]]
        data_volumes.append(data.split(":")[0])
        assert data_volumes[-1] in COMPOSE["volumes"]
        images = [v for v in volumes if v.endswith(":ro")]
        assert len(images) == 1
        mount = images[0].split(":")[-2]
        assert mount in env["CRACKQ_ALLOWED_ROOTS"].split(",")
        assert not any(mount.startswith(v.split(":")[-1]) for v in volumes if v != images[0])
    assert len(set(data_volumes)) == len(WORKERS)  # no shared disk: the store carries models
    assert "data" not in COMPOSE["volumes"]


def test_artifact_store_and_its_keys_come_from_the_environment() -> None:
    env = COMPOSE["x-crackq-env"]
    store = INTERPOLATION.fullmatch(env["CRACKQ_ARTIFACT_STORE"])
    assert store is not None and store.group(1) == "CRACKQ_ARTIFACT_STORE"
    assert store.group(2) == Settings.model_fields["artifact_store"].default
    for name in ("CRACKQ_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[name] is None  # passed through from the shell or .env only when set


def test_the_console_needs_accounts_and_stays_on_loopback() -> None:
    console = _env("console")
    users = INTERPOLATION.fullmatch(console["CRACKQ_UI_USERS"])
    assert users is not None and users.group(1) == "CRACKQ_UI_USERS"
    assert users.group(2).count(":") == 2  # even the laptop default is name:role:password
    assert console["CRACKQ_UI_ADDRESS"] == "0.0.0.0"
    assert SERVICES["console"]["ports"] == ["127.0.0.1:8600:8600"]
    assert any(v.endswith(":/images:ro") for v in SERVICES["console"]["volumes"])


def test_no_password_literals() -> None:
    strings = _strings(COMPOSE)
    secretish = re.compile(r"PASSWORD|PASS$|AUTH|SECRET|TOKEN", re.I)
    checked = 0
    for service in SERVICES.values():
        for key, value in service.get("environment", {}).items():
            if secretish.search(key) and not key.endswith("_FILE"):
                passed_through = value is None  # from the shell or .env, no default here
                assert passed_through or INTERPOLATION.fullmatch(str(value)), f"{key} is a literal"
                checked += 1
        command = [str(c) for c in service.get("command", [])]
        for flag, value in zip(command, command[1:], strict=False):
            if flag == "--requirepass":
                assert INTERPOLATION.fullmatch(value), "redis password is a literal"
                checked += 1
    for text in strings:
        for match in re.finditer(r"://[^:/@\s]*:([^@\s]+)@", text):
            assert INTERPOLATION.fullmatch(match.group(1)), f"password literal in {text}"
            checked += 1
    secret_defaults = {
        m.group(2)
        for text in strings
        for m in INTERPOLATION.finditer(text)
        if secretish.search(m.group(1))
    }
    assert secret_defaults <= DOCUMENTED_DEFAULTS
    assert checked >= 8  # every secret in the file was looked at
    assert "laptop only" in COMPOSE_TEXT  # the defaults are documented as such


def test_every_crackq_variable_is_a_setting() -> None:
    texts = [COMPOSE_TEXT, (ROOT / "docker-compose.cpu.yml").read_text(), _dockerfile()]
    names = {name for text in texts for name in re.findall(r"\bCRACKQ_[A-Z0-9_]+", text)}
    assert len(names) >= 8
    fields = set(Settings.model_fields)
    unknown = sorted(n for n in names if n.removeprefix("CRACKQ_").lower() not in fields)
    assert unknown == []


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", _dockerfile())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]  # fmt: skip


def test_dockerfile_base_user_and_entrypoint() -> None:
    steps = _instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 1 and froms[0].startswith("python:3.11-slim")
    assert json.loads(next(arg for op, arg in steps if op == "ENTRYPOINT")) == ["crackq"]
    ops = [op for op, _ in steps]
    last_user = max(i for i, op in enumerate(ops) if op == "USER")
    assert steps[last_user][1] not in ("root", "0")
    assert last_user > max(i for i, op in enumerate(ops) if op == "RUN")  # runs unprivileged


def test_dockerfile_installs_the_project_and_its_migrations() -> None:
    steps = _instructions()
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "libtcmalloc-minimal4" in runs
    assert 'pip install ".[s3,openvino]"' in runs
    assert any(op == "ARG" and arg.startswith("TORCH_INDEX_URL=") for op, arg in steps)
    workdir = next(arg for op, arg in steps if op == "WORKDIR")
    copies = [arg.split() for op, arg in steps if op == "COPY"]
    copied = {src.rstrip("/") for *sources, _dest in copies for src in sources}
    assert {"alembic.ini", "migrations", "worker", "models", "db"} <= copied
    # worker/migrate.py looks for migrations/ beside the imported worker package.
    env = " ".join(arg for op, arg in steps if op == "ENV")
    assert f"PYTHONPATH={workdir}" in env
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    needed = ["pyproject.toml", "README.md", "alembic.ini", "worker/app.py", "models", "db",
              "migrations/env.py", "migrations/versions/0001_results_and_model_versions.py"]  # fmt: skip
    for path in needed:
        assert not [p for p in patterns if fnmatch(path, p) or path.startswith(p + "/")], path
    assert {".venv", ".git", ".env", "tests"} <= set(patterns)


def test_workers_are_healthy_only_when_ready_and_prometheus_finds_them() -> None:
    port = Settings.model_fields["metrics_port"].default
    for name in WORKERS:
        check = SERVICES[name]["healthcheck"]
        assert check["test"][:2] == ["CMD", "python"]
        assert f"http://127.0.0.1:{port}/readyz" in check["test"][-1]
        assert _env(name)["CRACKQ_METRICS_ADDRESS"] == "0.0.0.0"
    prometheus = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    (discovery,) = prometheus["scrape_configs"][0]["dns_sd_configs"]
    assert set(discovery["names"]) == set(WORKERS) and discovery["port"] == port
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["metrics"]  # only with --profile metrics
        assert all(p.startswith("127.0.0.1:") for p in SERVICES[name]["ports"])
    for mount in SERVICES["prometheus"]["volumes"] + SERVICES["grafana"]["volumes"]:
        source = mount.split(":")[0]
        assert source in COMPOSE["volumes"] or (ROOT / source).exists(), mount


# --- the file as Compose itself renders it (harness/deploy/compose.py) -------------------


def _rendered(
    files: tuple[str, ...] = ("docker-compose.yml",), env: dict[str, str] | None = None
) -> dict[str, Any]:
    from harness.deploy import compose

    try:
        return compose.render(list(files), env)
    except compose.ComposeMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    ("files", "profiles"),
    [
        (["docker-compose.yml"], ()),
        (["docker-compose.yml", "docker-compose.cpu.yml"], ()),
        (["docker-compose.yml"], ("metrics",)),
    ],
)
def test_rendered_compose_agrees_with_the_cli_and_the_settings(
    files: list[str], profiles: tuple[str, ...]
) -> None:
    from harness.deploy import compose

    try:
        project = compose.render(files, profiles=profiles)
    except compose.ComposeMissing as exc:
        pytest.skip(str(exc))
    assert compose.check(project) == []
    crackq = {name for name, s in project["services"].items() if compose.is_crackq(s)}
    assert crackq == set(CRACKQ_SERVICES)
    assert ("prometheus" in project["services"]) == ("metrics" in profiles)


def test_rendered_values_follow_the_environment_and_the_cpu_override() -> None:
    bare = _rendered()["services"]["inference"]
    assert bare["environment"]["CRACKQ_ARTIFACT_STORE"] == "postgres"
    assert bare["environment"]["CRACKQ_S3_ENDPOINT_URL"] is None  # unset: not passed at all
    assert bare["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    site = {"CRACKQ_ARTIFACT_STORE": "s3://models/crackq", "CRACKQ_S3_ENDPOINT_URL":
            "http://minio:9000", "AWS_SECRET_ACCESS_KEY": "k", "REDIS_PASSWORD": "r3d"}  # fmt: skip
    project = _rendered(("docker-compose.yml", "docker-compose.cpu.yml"), site)
    for name in WORKERS:
        env = project["services"][name]["environment"]
        assert env["CRACKQ_ARTIFACT_STORE"] == "s3://models/crackq"
        assert env["CRACKQ_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_SECRET_ACCESS_KEY"] == "k"
        assert env["CRACKQ_BROKER_URL"] == "redis://:r3d@redis:6379/0"
    cpu = project["services"]["inference"]
    assert "deploy" not in cpu and cpu["environment"]["CRACKQ_DEVICE"] == "cpu"
    data = [
        m["source"]
        for name in WORKERS
        for m in project["services"][name]["volumes"]
        if m["target"] == "/data"
    ]
    assert len(set(data)) == 2


def test_the_compose_check_catches_each_kind_of_mistake() -> None:
    from harness.deploy import compose

    project = _rendered()
    services = project["services"]
    services["inference"]["command"] = ["worker", "--queues", "gpu"]
    services["training"]["environment"]["CRACKQ_TRAINING_QUEUE"] = "x"
    services["training"]["environment"]["CRACKQ_VISIBILITY_TIMEOUT_S"] = "an hour"
    services["training"]["healthcheck"]["test"][-1] = services["training"]["healthcheck"]["test"][
        -1
    ].replace("9808/readyz", "9809/ready")
    services["migrate"]["volumes"] = [{"type": "volume", "source": "training-data"}]
    problems = "\n".join(compose.check(project))
    assert "compose service inference: `crackq worker --queues gpu`: " in problems
    assert "invalid choice: 'gpu'" in problems
    assert "CRACKQ_TRAINING_QUEUE is not a crackq setting" in problems
    assert "CRACKQ_VISIBILITY_TIMEOUT_S='an hour'" in problems
    assert "probes port 9809, but worker listens on 9808" in problems
    assert "/ready is not served by worker" in problems
    assert "volume training-data is written by migrate, training: a shared disk" in problems
    del services["training"]["healthcheck"]
    assert "training: a worker needs a healthcheck" in "\n".join(compose.check(project))


@pytest.mark.parametrize("ready", [True, False])
def test_the_worker_healthcheck_command_runs_against_the_real_endpoint(ready: bool) -> None:
    import subprocess
    import sys

    from harness.deploy import compose
    from harness.procs import free_port
    from worker import health
    from worker.opsserver import make_app, serve

    code = compose.healthcheck_code(_rendered(), "inference")
    port = Settings.model_fields["metrics_port"].default
    assert f":{port}/readyz" in code
    checks = [health.Check("database", ready, "test")]
    server, bound = serve("127.0.0.1", free_port(), make_app(lambda: checks), tries=1)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code.replace(f":{port}/", f":{bound}/")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert (out.returncode == 0) == ready, out.stderr  # 503 raises: unhealthy
    if not ready:
        assert "503" in out.stderr

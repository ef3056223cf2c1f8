"""docker-compose.yml rendered by Compose itself (`config`), then checked against crackq."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.deploy import rules
from harness.procs import ROOT

URL = re.compile(r"https?://([\w.-]+):(\d+)(/[^'\"\s]*)")


class ComposeMissing(RuntimeError):
    """Neither the `docker compose` plugin nor a v2+ `docker-compose` binary is installed."""


def compose_command() -> list[str]:
    """`docker compose` when the plugin answers, else the docker-compose binary (v2 or
    later: Debian's 1.29 rejects the compose spec's `name:` and `!reset`)."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("docker-compose", path=search)
    if binary:
        candidates.append([binary])
    for argv in candidates:
        try:
            out = subprocess.run(
                [*argv, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        version = out.stdout.strip().lstrip("v")
        if out.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return argv
    raise ComposeMissing(
        "no `docker compose` plugin and no docker-compose v2+ (pip install -e '.[dev]')"
    )


def render(
    files: list[str], env: dict[str, str] | None = None, profiles: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The project as `docker compose -f F... [--profile P] config` resolves it, with only
    `env` (and no .env file) for interpolation; JSON as Compose prints it."""
    argv = compose_command()
    for name in files:
        argv += ["-f", str(ROOT / name)]
    for profile in profiles:
        argv += ["--profile", profile]
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:
        env_file.write("".join(f"{k}={v}\n" for k, v in (env or {}).items()))
        env_file.flush()
        argv += ["--project-directory", str(ROOT), "--env-file", env_file.name]
        clean = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        out = subprocess.run(
            [*argv, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
            env={**clean, "DOCKER_CONFIG": tempfile.gettempdir()},
        )  # fmt: skip
    if out.returncode != 0:
        raise ValueError(f"{' '.join(argv)} config: {out.stderr.strip()}")
    project: dict[str, Any] = json.loads(out.stdout)
    return project


def is_crackq(service: dict[str, Any]) -> bool:
    """A service running the crackq image (built from this repository's Dockerfile)."""
    return str(service.get("image", "")).startswith("crackq") or "build" in service


def check(project: dict[str, Any]) -> list[str]:
    """Every problem of a rendered project: commands, settings, healthchecks, shared disks."""
    problems: list[str] = []
    writers: dict[str, list[str]] = defaultdict(list)
    for name, service in project["services"].items():
        if not is_crackq(service):
            continue
        where = f"compose service {name}"
        entrypoint = service.get("entrypoint")
        if entrypoint not in (None, ["crackq"]):
            problems.append(f"{where}: entrypoint {entrypoint} is not the image's `crackq`")
        command = service.get("command") or []
        env = dict(service.get("environment") or {})
        problems += rules.settings_problems(where, env)
        found = rules.command_problems(where, command)
        problems += found
        if not found:
            args = rules.parsed(command)
            problems += _healthcheck(where, rules.role_of(args), service, env, args)
        for mount in service.get("volumes") or []:
            if mount.get("type") in ("volume", "bind") and not mount.get("read_only"):
                writers[f"{mount['type']} {mount.get('source')}"].append(name)
    for source, names in sorted(writers.items()):
        if len(names) > 1:
            problems.append(f"{source} is written by {', '.join(names)}: a shared disk")
    return problems


def _healthcheck(
    where: str, role: str, service: dict[str, Any], env: dict[str, Any], args: Any
) -> list[str]:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return [f"{where}: a {role} needs a healthcheck"] if role == "worker" else []
    test = [str(t) for t in check.get("test", [])]
    problems = []
    if test[:1] == ["CMD"] and test[1:3] == ["python", "-c"]:
        try:
            compile(test[3], f"{where} healthcheck", "exec")
        except SyntaxError as exc:
            problems.append(f"{where}: healthcheck code does not compile: {exc}")
    elif test[:1] != ["CMD-SHELL"] and test[:1] != ["CMD"]:
        problems.append(f"{where}: healthcheck test {test[:1]} is neither CMD nor CMD-SHELL")
    urls = URL.findall(" ".join(test))
    if not urls:
        problems.append(f"{where}: healthcheck calls no http endpoint: {test}")
    for host, port, path in urls:
        if host not in ("127.0.0.1", "localhost"):
            problems.append(f"{where}: healthcheck calls {host}, not the container itself")
        problems += rules.endpoint_problems(where, role, int(port), path, env, args)
    return problems


def healthcheck_code(project: dict[str, Any], service: str) -> str:
    """The Python a service's `CMD python -c` healthcheck runs."""
    test = project["services"][service]["healthcheck"]["test"]
    return str(test[3])

"""What any deployment of crackq must agree with: the CLI's parser, the settings, the endpoints."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

WORKER_PATHS = ("/metrics", "/healthz", "/readyz")
SETTING = re.compile(r"CRACKQ_[A-Z0-9_]+")


def command_problems(where: str, argv: list[str]) -> list[str]:
    """Why `crackq ARGV` would not start (the parser's own message), or nothing."""
    from worker.cli.main import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args([str(a) for a in argv])
    except SystemExit as exc:
        if exc.code:
            message = err.getvalue().strip().splitlines()[-1:] or [f"exit {exc.code}"]
            return [f"{where}: `crackq {' '.join(map(str, argv))}`: {message[0]}"]
    return []


def parsed(argv: list[str]) -> Any:
    """The namespace `crackq ARGV` parses to (call command_problems first)."""
    from worker.cli.main import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def settings_problems(where: str, env: Mapping[str, str | None]) -> list[str]:
    """Every CRACKQ_* name in `env` must be a setting, and every value set must validate."""
    from worker.settings import Settings

    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("CRACKQ_"):
            continue
        field = name.removeprefix("CRACKQ_").lower()
        if field not in Settings.model_fields:
            problems.append(f"{where}: {name} is not a crackq setting (worker/settings.py)")
        elif value is not None:
            values[field] = value
    try:
        Settings.model_validate(values)  # these values alone: no environment, no .env
    except ValidationError as exc:
        for error in exc.errors():
            loc = "CRACKQ_" + str(error["loc"][0]).upper() if error["loc"] else "?"
            problems.append(f"{where}: {loc}={values.get(loc[7:].lower())!r}: {error['msg']}")
    return problems


def metrics_port(env: Mapping[str, str | None]) -> int:
    """The port a worker with `env` serves /metrics, /healthz and /readyz on."""
    from worker.settings import Settings

    value = env.get("CRACKQ_METRICS_PORT")
    return int(value) if value else int(Settings.model_fields["metrics_port"].default)


def flower_port(env: Mapping[str, str | None], args: Any) -> int:
    """The port `crackq flower` listens on with `env` and its parsed arguments."""
    from worker.settings import Settings

    if getattr(args, "port", None):
        return int(args.port)
    value = env.get("CRACKQ_FLOWER_PORT")
    return int(value) if value else int(Settings.model_fields["flower_port"].default)


def worker_answers(path: str) -> bool:
    """Whether a worker's operations endpoint (worker/opsserver.py) serves `path`."""
    from worker.opsserver import make_app

    statuses: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    body = make_app(lambda: [])(environ, lambda status, headers: statuses.append(status))
    list(body)
    return not statuses[0].startswith("404")


def flower_answers(path: str) -> bool:
    """Whether Flower routes `path` to a handler (flower/urls.py)."""
    from flower.urls import handlers
    from flower.views.error import NotFoundErrorHandler
    from tornado.web import URLSpec

    for spec in handlers:
        pattern, handler = (
            (spec.regex.pattern, spec.handler_class) if isinstance(spec, URLSpec) else spec[:2]
        )
        if handler is not NotFoundErrorHandler and re.fullmatch(pattern.rstrip("$"), path):
            return True
    return False


def endpoint_problems(
    where: str, role: str, url_port: int, path: str, env: Mapping[str, str | None], args: Any
) -> list[str]:
    """A probe of `role` (worker or flower) on `url_port` and `path` reaches a real endpoint."""
    if role == "flower":
        port, answers, known = flower_port(env, args), flower_answers(path), "Flower's routes"
    else:
        port, answers, known = metrics_port(env), worker_answers(path), ", ".join(WORKER_PATHS)
    problems = []
    if url_port != port:
        problems.append(f"{where}: probes port {url_port}, but {role} listens on {port}")
    if not answers:
        problems.append(f"{where}: {path} is not served by {role} ({known})")
    return problems


def role_of(args: Any) -> str:
    """worker, flower, or job (a crackq command that serves nothing, e.g. migrate)."""
    return {"worker": "worker", "flower": "flower"}.get(args.command, "job")


def names_in(texts: Iterable[str]) -> set[str]:
    """Every CRACKQ_* name mentioned in `texts` (comments included)."""
    return {name for text in texts for name in SETTING.findall(text)}

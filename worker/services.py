"""Which Redis and PostgreSQL to use: the configured ones, or embedded ones when none answers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

from worker.embedded import embedded_services

if TYPE_CHECKING:
    from worker.settings import Settings

log = logging.getLogger(__name__)

# libpq's compiled-in socket folder (Debian and the psycopg2-binary wheels) for host-less URLs.
_LIBPQ_SOCKET_DIR = "/var/run/postgresql"


@dataclass(frozen=True)
class ServicePlan:
    """The broker and database URLs to use; None means start that one embedded."""

    broker_url: str | None
    database_url: str | None


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts connections at a redis:// or postgresql:// URL's address."""
    target = _endpoint(url)
    try:
        if isinstance(target, str):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(target)
        else:
            socket.create_connection(target, timeout=timeout).close()
    except OSError:
        return False
    return True


def _endpoint(url: str) -> str | tuple[str, int]:
    """A unix socket path or a (host, port) pair for a broker or database URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("unix", "socket", "redis+socket"):
        return parts.path
    if scheme.startswith("postgres"):
        query = parse_qs(parts.query)  # libpq also takes host and port as query parameters
        port = parts.port or int(query.get("port", ["5432"])[0])
        host = parts.hostname or query.get("host", [_LIBPQ_SOCKET_DIR])[0]
        return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
    if scheme in ("redis", "rediss"):
        return (parts.hostname or "127.0.0.1", parts.port or 6379)
    raise ValueError(f"not a redis or postgresql URL: {redact(url)}")


def redact(url: str) -> str:
    """The URL with its password masked, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_services(settings: Settings, probe: Callable[[str], bool] = answers) -> ServicePlan:
    """Per service: its configured or default URL, or None where an embedded one must start.

    In "auto" mode only an unconfigured (default) URL that does not answer is replaced: a URL
    someone configured is kept even when down, so a worker never silently writes elsewhere.
    """
    broker, database = settings.broker(), settings.database()
    if settings.embedded == "always":
        return ServicePlan(None, None)
    if settings.embedded == "never":
        return ServicePlan(broker, database)
    fields = settings.model_fields_set
    broker_set = "broker_url" in fields or settings.broker_url_file is not None
    database_set = "database_url" in fields or settings.database_url_file is not None
    return ServicePlan(
        _pick("Redis", broker, configured=broker_set, probe=probe),
        _pick("PostgreSQL", database, configured=database_set, probe=probe),
    )


def _pick(name: str, url: str, *, configured: bool, probe: Callable[[str], bool]) -> str | None:
    if probe(url):
        return url
    if configured:
        log.warning("configured %s at %s does not answer; using it anyway", name, redact(url))
        return url
    log.info("no %s answers at %s, none configured: embedding one", name, redact(url))
    return None


@contextmanager
def open_services(settings: Settings) -> Iterator[tuple[str, str]]:
    """(broker URL, database URL) to use, with embedded servers running where needed."""
    plan = resolve_services(settings)
    with embedded_services(
        settings.data_dir,
        need_redis=plan.broker_url is None,
        need_postgres=plan.database_url is None,
    ) as started:
        broker = plan.broker_url or started.broker_url
        database = plan.database_url or started.database_url
        assert broker is not None and database is not None
        yield broker, database

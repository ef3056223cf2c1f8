"""Embedded Redis/PostgreSQL start, serve real clients, persist and always stop."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
import sqlalchemy as sa
from kombu import Connection

from worker.embedded import embedded_services
from worker.services import answers, open_services, redact, resolve_services
from worker.settings import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL, Settings

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per module, so initdb runs once and later starts are warm."""
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CRACKQ_"):
            monkeypatch.delenv(name)


def _redis_servers_in(folder: Path) -> list[psutil.Process]:
    """Redis processes whose working folder is `folder` (Redis chdirs into its --dir)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if "redis" in (proc.info["name"] or "") and Path(proc.cwd()) == folder:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_servers_answer_real_clients_and_stop(
    data_dir: Path, record_property: pytest.RecordProperty
) -> None:
    cold = not (data_dir / "postgres" / "PG_VERSION").exists()
    started = time.perf_counter()
    with embedded_services(data_dir, need_redis=True, need_postgres=True) as services:
        elapsed = time.perf_counter() - started
        broker, database = services.broker_url, services.database_url
        assert broker is not None and database is not None
        assert answers(broker) and answers(database)

        engine = sa.create_engine(database)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id int PRIMARY KEY, label text)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1, 'crack')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT label FROM probe")).scalar_one() == "crack"
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "crackq"
        engine.dispose()

        with redis.Redis.from_url(broker) as client:
            client.set("probe", "no_crack")
            assert client.get("probe") == b"no_crack"
        port = int(broker.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stranger:
            stranger.sendall(b"PING\r\n")
            assert stranger.recv(64).startswith(b"-NOAUTH")  # a password guards loopback

        # Celery's transport and a separate process (as the workers are) reach both servers.
        with Connection(broker) as conn:
            queue = conn.SimpleQueue("crackq-embedded-probe")
            queue.put({"ref": "file:///x.jpg"})
            message = queue.get(timeout=5)
            message.ack()
            assert message.payload == {"ref": "file:///x.jpg"}
            queue.close()
        child = (
            "import os, redis, sqlalchemy as sa\n"
            "redis.Redis.from_url(os.environ['B']).ping()\n"
            "e = sa.create_engine(os.environ['D'])\n"
            "with e.connect() as c: print(c.execute(sa.text('SELECT count(*) FROM probe')).scalar())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", child],
            env={**os.environ, "B": broker, "D": database},
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert out.stdout.strip() == "1"

    record_property("start_s", round(elapsed, 3))
    log.info("embedded start (%s): %.3f s", "cold, with initdb" if cold else "warm", elapsed)
    assert not answers(broker) and not answers(database)
    assert _redis_servers_in(data_dir / "redis") == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_data_survives_restart_and_interrupt_still_stops(data_dir: Path) -> None:
    with embedded_services(data_dir, need_redis=True, need_postgres=True) as first:
        assert first.broker_url and first.database_url
        with redis.Redis.from_url(first.broker_url) as client:
            client.rpush("kept", "a")
        engine = sa.create_engine(first.database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (id int)"))
        engine.dispose()

    started = time.perf_counter()
    with (
        pytest.raises(KeyboardInterrupt),
        embedded_services(data_dir, need_redis=True, need_postgres=True) as second,
    ):
        warm_s = time.perf_counter() - started
        assert second.broker_url and second.database_url
        with redis.Redis.from_url(second.broker_url) as client:
            assert client.lrange("kept", 0, -1) == [b"a"]  # append-only file replayed
        engine = sa.create_engine(second.database_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM kept")).scalar_one() == 0
        engine.dispose()
        raise KeyboardInterrupt

    log.info("embedded warm start: %.3f s", warm_s)
    assert warm_s < 5.0
    assert not answers(second.broker_url) and not answers(second.database_url)
    assert _redis_servers_in(data_dir / "redis") == []


def test_failed_postgres_start_stops_redis(tmp_path: Path) -> None:
    (tmp_path / "postgres").write_text("not a folder")
    with (
        pytest.raises(Exception),  # noqa: B017  (whatever pgserver raises, Redis must stop)
        embedded_services(tmp_path, need_redis=True, need_postgres=True),
    ):
        pass
    assert _redis_servers_in(tmp_path / "redis") == []


def test_nothing_asked_starts_nothing(tmp_path: Path) -> None:
    with embedded_services(tmp_path, need_redis=False, need_postgres=False) as services:
        assert services.broker_url is None and services.database_url is None
    assert list(tmp_path.iterdir()) == []


def test_answers_tcp_and_unix_sockets(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert answers(f"redis://:pw@127.0.0.1:{port}/0")
        assert answers(f"postgresql+psycopg2://u:pw@127.0.0.1:{port}/db")
    assert not answers(f"redis://127.0.0.1:{port}/0")
    assert not answers("redis://no-such-host.invalid:6379/0")

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / ".s.PGSQL.5433"))
        server.listen()
        assert answers(f"postgresql+psycopg2://postgres@/crackq?host={tmp_path}&port=5433")
        assert answers(f"postgresql+psycopg2://postgres@:5433/crackq?host={tmp_path}")
        assert not answers(f"postgresql+psycopg2://postgres@/crackq?host={tmp_path}")
        assert answers(f"redis+socket://{tmp_path}/.s.PGSQL.5433")
    assert not answers(f"redis+socket://{tmp_path}/missing.sock")
    with pytest.raises(ValueError):
        answers("amqp://guest@localhost//")


def test_redact_masks_only_the_password() -> None:
    assert redact("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact(DEFAULT_DATABASE_URL) == DEFAULT_DATABASE_URL


@pytest.mark.usefixtures("clean_env")
def test_resolve_services_modes() -> None:
    down, up = (lambda url: False), (lambda url: True)
    configured = {"broker_url": "redis://10.9.9.9:6379/0", "database_url": "postgresql://h/db"}

    forced = resolve_services(Settings(_env_file=None, embedded="always"), probe=up)
    assert (forced.broker_url, forced.database_url) == (None, None)

    never = resolve_services(Settings(_env_file=None, embedded="never"), probe=down)
    assert (never.broker_url, never.database_url) == (DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL)

    defaults_down = resolve_services(Settings(_env_file=None), probe=down)
    assert (defaults_down.broker_url, defaults_down.database_url) == (None, None)

    defaults_up = resolve_services(Settings(_env_file=None), probe=up)
    assert defaults_up.broker_url == DEFAULT_BROKER_URL
    assert defaults_up.database_url == DEFAULT_DATABASE_URL

    # A configured URL is kept even when down: the demo must not write somewhere else.
    kept = resolve_services(Settings(_env_file=None, **configured), probe=down)
    assert (kept.broker_url, kept.database_url) == tuple(configured.values())

    # Each service is decided on its own: here only Redis gets embedded.
    mixed = resolve_services(Settings(_env_file=None), probe=lambda url: url.startswith("postgres"))
    assert (mixed.broker_url, mixed.database_url) == (None, DEFAULT_DATABASE_URL)


@pytest.mark.usefixtures("clean_env")
def test_resolve_services_reads_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://u:p@db.internal/crackq\n")
    plan = resolve_services(
        Settings(_env_file=None, database_url_file=secret), probe=lambda url: False
    )
    assert plan.database_url == "postgresql://u:p@db.internal/crackq"  # configured: kept
    assert plan.broker_url is None  # default broker, down: embedded


@pytest.mark.usefixtures("clean_env")
def test_open_services_embeds_only_what_the_plan_says(data_dir: Path) -> None:
    configured = Settings(
        _env_file=None, embedded="never", data_dir=data_dir, broker_url="redis://10.9.9.9:1/0"
    )
    with open_services(configured) as (broker, database):
        assert (broker, database) == ("redis://10.9.9.9:1/0", DEFAULT_DATABASE_URL)
    assert not (data_dir / "redis" / "redis.pid").exists()  # nothing was started

    with open_services(Settings(_env_file=None, embedded="always", data_dir=data_dir)) as urls:
        assert all(answers(url) for url in urls)
        assert urls[1].startswith("postgresql+psycopg2://")
    assert not any(answers(url) for url in urls)

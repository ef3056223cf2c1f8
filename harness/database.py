"""A throwaway PostgreSQL database: created, migrated to head, dropped on the way out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def url_of(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server `admin_url` points at."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def throwaway_database(admin_url: str, name: str, migrate: bool = True) -> Iterator[str]:
    """CREATE database `name`, migrate it to head (unless told not to), yield its URL; DROP it."""
    from sqlalchemy import create_engine, text

    from worker.migrate import upgrade

    url = url_of(admin_url, name)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    log.info("created database %s", name)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            # sessions a crashed worker left open would make DROP wait forever
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
        log.info("dropped database %s", name)

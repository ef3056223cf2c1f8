"""Shared fixtures: a throwaway PostgreSQL database, a private Redis db, real worker processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.database import throwaway_database, url_of
from harness.procs import ROOT
from harness.redis_server import emptied_db, leased_db

PG_ADMIN_URL = os.environ.get(
    "CRACKQ_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
TEST_DB = f"crackq_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
TEST_DB_URL = url_of(PG_ADMIN_URL, TEST_DB)
# A db of its own per test session on this host (11, or the next free one up to 15).
# Subprocesses that import this module inherit the choice through the environment.
REDIS_DB = int(os.environ.get("CRACKQ_TEST_REDIS_DB") or leased_db(11, 15))
os.environ["CRACKQ_TEST_REDIS_DB"] = str(REDIS_DB)
TEST_BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
DATA_DIR = Path(
    os.environ.get("CRACKQ_TEST_DATA", ROOT.parent / "shared" / "data" / "ozgenel")
).resolve()

# Settings are read once per process: point them at the test services before anything
# imports worker.settings. Worker subprocesses inherit this environment.
os.environ.update(
    CRACKQ_DATABASE_URL=TEST_DB_URL,
    CRACKQ_BROKER_URL=TEST_BROKER_URL,
    CRACKQ_EMBEDDED="never",
    CRACKQ_PRETRAINED="never",
    CRACKQ_VISIBILITY_TIMEOUT_S=os.environ.get("CRACKQ_VISIBILITY_TIMEOUT_S", "30"),
    CRACKQ_MODEL_POLL_S="1",
)
os.environ.pop("CRACKQ_MODEL_CHECKPOINT", None)


def real_data_or_skip() -> Path:
    if not (DATA_DIR / "Positive").is_dir():
        pytest.skip(f"real photos not found at {DATA_DIR} (set CRACKQ_TEST_DATA)")
    return DATA_DIR


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database migrated to head, dropped at the end of the session."""
    with throwaway_database(PG_ADMIN_URL, TEST_DB) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str):
    from db.session import make_engine

    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine):
    from db.session import make_sessionmaker

    return make_sessionmaker(engine)


@pytest.fixture
def db_session(engine):
    """A session inside a transaction that is rolled back after the test."""
    from sqlalchemy.orm import Session

    with engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            trans.rollback()


@pytest.fixture(scope="session")
def redis_client():
    """The private Redis db of this test run, emptied before and after."""
    with emptied_db(TEST_BROKER_URL) as client:
        yield client


@pytest.fixture
def clean_tables(engine):
    """Empty every table a test counts rows of (dead letters too) before it runs."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE results, model_versions, training_runs, labels, dead_letters "
                "RESTART IDENTITY CASCADE"
            )
        )
    yield

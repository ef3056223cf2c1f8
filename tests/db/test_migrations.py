"""Migrations go up, down and up again, and match the SQLAlchemy tables exactly."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from db.base import Base
from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade


@pytest.fixture
def scratch_url() -> Iterator[str]:
    """An empty database (no migrations run): each test migrates it itself."""
    name = f"crackq_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        yield url


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    engine = create_engine(scratch_url)
    upgrade(scratch_url)
    tables = set(inspect(engine).get_table_names())
    assert {"results", "model_versions"} <= tables
    assert "crackq_results_v1" in inspect(engine).get_view_names()
    downgrade(scratch_url, "base")
    engine.dispose()
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert inspect(engine).get_view_names() == []
    upgrade(scratch_url)
    assert {"results", "model_versions"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_autogenerate_finds_no_drift(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_reporting_view_columns_are_stable(database_url: str) -> None:
    # Reporting tools depend on these names; removing or renaming one breaks them.
    engine = create_engine(database_url)
    cols = [c["name"] for c in inspect(engine).get_columns("crackq_results_v1")]
    engine.dispose()
    assert cols[:15] == [
        "request_id",
        "batch_id",
        "image_ref",
        "status",
        "label",
        "confidence",
        "crack_probability",
        "model_version",
        "error_code",
        "error_message",
        "worker_host",
        "submitted_at",
        "finished_at",
        "latency_ms",
        "created_at",
    ]
    assert cols[15:20] == ["mode", "tiles", "crack_tiles", "crack_area_fraction", "crack_regions"]
    assert cols[20:24] == ["asset_id", "inspection_id", "captured_at", "metadata"]


def _privileged(url: str, table: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(
                conn.scalar(
                    text("SELECT has_table_privilege('crackq_reporting', :t, 'SELECT')"),
                    {"t": table},
                )
            )
    finally:
        engine.dispose()


def test_reporting_grants_go_down_and_up_with_their_migration(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _privileged(scratch_url, "crackq_results_v1") and _privileged(scratch_url, "results")
    downgrade(scratch_url, "0003")
    assert not _privileged(scratch_url, "results")
    upgrade(scratch_url)
    assert _privileged(scratch_url, "results")


def test_crack_maps_come_and_go_with_their_migration_and_keep_the_view_readable(
    scratch_url: str,
) -> None:
    upgrade(scratch_url)
    assert _privileged(scratch_url, "crack_maps") and _privileged(scratch_url, "crack_regions")
    downgrade(scratch_url, "0006")
    engine = create_engine(scratch_url)
    try:
        found = inspect(engine)
        assert "crack_maps" not in found.get_table_names()
        view = [c["name"] for c in found.get_columns("crackq_results_v1")]
        assert len(view) == 15 and "mode" not in [c["name"] for c in found.get_columns("results")]
    finally:
        engine.dispose()
    assert _privileged(scratch_url, "crackq_results_v1")  # the recreated view is granted again
    upgrade(scratch_url)
    assert _privileged(scratch_url, "crack_maps")


def test_reporting_role_reads_results_and_nothing_else(database_url: str) -> None:
    login = f"crackq_report_test_{os.getpid()}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{login}" LOGIN IN ROLE crackq_reporting'))
    reader = create_engine(make_url(database_url).set(username=login, password=None))
    try:
        with reader.connect() as conn:
            conn.execute(text("SELECT count(*) FROM crackq_results_v1"))
            conn.execute(text("SELECT count(*) FROM crackq_assets_v1"))
            conn.execute(text("SELECT count(*) FROM crackq_result_scores_v1"))
            conn.execute(text("SELECT count(*) FROM results"))
            conn.execute(text("SELECT count(*) FROM model_versions"))
        refused = [
            "INSERT INTO results (request_id, image_ref, status) VALUES ('x', 'x', 'queued')",
            "UPDATE results SET label = 'crack'",
            "DELETE FROM results",
            "SELECT count(*) FROM dead_letters",
            "SELECT count(*) FROM training_runs",
            "SELECT count(*) FROM labels",
            "SELECT count(*) FROM rescore_jobs",
            "CREATE TABLE mine (x int)",
        ]
        for statement in refused:
            with (
                reader.connect() as conn,
                pytest.raises(ProgrammingError, match="permission denied"),
            ):
                conn.execute(text(statement))
    finally:
        reader.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
        admin.dispose()

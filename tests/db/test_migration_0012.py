"""Migration 0012 (score history) backfills every succeeded row's score, grants the
reporting role its history and view, and goes down and up."""

from __future__ import annotations

import datetime as dt
import os
import uuid

from sqlalchemy import create_engine, inspect, text

from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade

TABLES = {"result_scores", "rescore_jobs"}
VIEW = "crackq_result_scores_v1"


def _readable(engine, name: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text("SELECT has_table_privilege('crackq_reporting', :t, 'SELECT')"), {"t": name}
            )
        )


def test_history_is_backfilled_and_comes_and_goes_with_its_migration() -> None:
    name = f"crackq_mig12_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        upgrade(url, "0011")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO results (request_id, image_ref, status, label, confidence, "
                        "crack_probability, model_version, mode, tiles, finished_at) VALUES "
                        "('ok', '/a', 'succeeded', 'crack', 0.9, 0.9, 'v1', 'map', 6, "
                        " '2026-12-01T09:00:00Z'), "
                        "('bad', '/b', 'failed', NULL, NULL, NULL, NULL, NULL, NULL, now()), "
                        "('wait', '/c', 'queued', NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
                    )
                )
            upgrade(url)
            found = inspect(engine)
            assert set(found.get_table_names()) >= TABLES and VIEW in found.get_view_names()
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT request_id, model_version, label, source, tiles, scored_at, "
                        "current FROM crackq_result_scores_v1"
                    )
                ).all()
            assert len(rows) == 1
            rid, version, label, source, tiles, scored_at, current = rows[0]
            assert (rid, version, label, source, tiles, current) == (
                "ok", "v1", "crack", "live", 6, True
            )  # fmt: skip
            assert scored_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
            assert _readable(engine, "result_scores") and _readable(engine, VIEW)
            assert not _readable(engine, "rescore_jobs")  # operations, not reporting
            downgrade(url, "0011")
            engine.dispose()
            found = inspect(engine)
            assert not TABLES & set(found.get_table_names())
            assert VIEW not in found.get_view_names()
            upgrade(url)
            assert _readable(engine, "result_scores")
        finally:
            engine.dispose()

"""Migration 0006 backfills the registry history from promoted_at, and goes down cleanly."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, inspect, text

from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade


def test_existing_promotions_become_events_oldest_first() -> None:
    name = f"crackq_mig6_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        upgrade(url, "0005")
        engine = create_engine(url)
        with engine.begin() as conn:
            for v, at in (("B", "2026-01-02"), ("A", "2026-01-01"), ("C", None)):
                conn.execute(
                    text(
                        "INSERT INTO model_versions (version, status, checkpoint_uri, sha256, "
                        "architecture, promoted_at) VALUES (:v, :s, '/c', 'x', 'r50', :at)"
                    ),
                    {"v": v, "s": "promoted" if v == "B" else "retired", "at": at},
                )
        upgrade(url, "0006")
        with engine.connect() as conn:
            events = conn.execute(
                text(
                    "SELECT action, version, previous_version, actor FROM model_events ORDER BY id"
                )
            ).all()
        assert [tuple(e) for e in events] == [
            ("promote", "A", None, "migration 0006"),
            ("promote", "B", "A", "migration 0006"),
        ]
        downgrade(url, "0005")
        engine.dispose()
        assert "model_events" not in inspect(engine).get_table_names()
        columns = {c["name"] for c in inspect(engine).get_columns("training_runs")}
        assert not {"heartbeat_at", "worker", "retry_of"} & columns
        engine.dispose()

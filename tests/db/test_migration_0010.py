"""Migration 0010 (shadow versions) goes down and up, grants the reporting role, and keeps
the registry history valid both ways."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, inspect, text

from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade

TABLES = {"model_shadow", "shadow_scores"}


def _readable(engine, table: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text("SELECT has_table_privilege('crackq_reporting', :t, 'SELECT')"), {"t": table}
            )
        )


def test_shadow_tables_come_and_go_with_their_events() -> None:
    name = f"crackq_mig10_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        upgrade(url)
        engine = create_engine(url)
        try:
            assert set(inspect(engine).get_table_names()) >= TABLES
            assert all(_readable(engine, t) for t in TABLES)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO model_versions (version, checkpoint_uri, sha256, "
                        "architecture) VALUES ('s', '/c', 'x', 'r50')"
                    )
                )
                for action in ("promote", "shadow_on", "shadow_off"):
                    conn.execute(
                        text(
                            "INSERT INTO model_events (version, action, actor) "
                            "VALUES ('s', :a, 'test')"
                        ),
                        {"a": action},
                    )
            downgrade(url, "0009")
            engine.dispose()
            assert not TABLES & set(inspect(engine).get_table_names())
            with engine.connect() as conn:
                actions = conn.scalars(text("SELECT action FROM model_events")).all()
            assert actions == ["promote"]  # shadow events go with the tables
            upgrade(url)
            assert set(inspect(engine).get_table_names()) >= TABLES
            assert _readable(engine, "shadow_scores")
        finally:
            engine.dispose()

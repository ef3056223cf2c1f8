"""Migration 0011 (the review queue) goes down and up, grants the reporting role, and its
entries go with their photo's row."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from harness.database import throwaway_database
from tests.conftest import PG_ADMIN_URL
from worker.migrate import downgrade, upgrade


def test_the_review_queue_comes_and_goes_with_its_migration() -> None:
    name = f"crackq_mig11_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with throwaway_database(PG_ADMIN_URL, name, migrate=False) as url:
        upgrade(url, "0011")
        engine = create_engine(url)
        try:
            assert "review_queue" in inspect(engine).get_table_names()
            with engine.begin() as conn:
                readable = (
                    "SELECT has_table_privilege('crackq_reporting', 'review_queue', 'SELECT')"
                )
                assert conn.scalar(text(readable))
                conn.execute(
                    text(
                        "INSERT INTO results (request_id, image_ref, status) "
                        "VALUES ('a', '/a.jpg', 'succeeded'), ('b', '/b.jpg', 'succeeded')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO review_queue (request_id, reason) "
                        "VALUES ('a', 'uncertain'), ('b', 'sample')"
                    )
                )
                conn.execute(text("DELETE FROM results WHERE request_id = 'b'"))
                assert (
                    conn.scalar(text("SELECT string_agg(request_id, ',') FROM review_queue")) == "a"
                )
            # a decided entry says who and when; a labelled one, its answer
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text("UPDATE review_queue SET state = 'labelled'"))
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text("UPDATE review_queue SET reason = 'hunch'"))
            downgrade(url, "0010")
            engine.dispose()
            assert "review_queue" not in inspect(engine).get_table_names()
            upgrade(url, "0011")
            assert "review_queue" in inspect(engine).get_table_names()
        finally:
            engine.dispose()

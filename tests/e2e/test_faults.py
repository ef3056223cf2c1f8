"""Faults against a real worker, Redis and PostgreSQL: every image ends with exactly one row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from harness.faults.crashes import kill9_mid_batch, redis_restart
from harness.faults.messages import duplicate_delivery, malformed_and_pickle
from harness.faults.poison import poison_in_batch
from harness.faults.postgres import postgres_refusal
from harness.faults.rig import Rig
from tests.conftest import TEST_BROKER_URL, real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


@pytest.fixture
def rig(tmp_path: Path, engine: Any) -> Rig:
    data = real_data_or_skip()
    photos = sorted(str(p) for p in (data / "Positive").glob("*.jpg"))[:40]
    photos += sorted(str(p) for p in (data / "Negative").glob("*.jpg"))[:40]
    return Rig(tmp_path, engine, TEST_BROKER_URL, photos, data)


def check(result: dict[str, Any]) -> None:
    print(f"\n{result}")
    assert result["exercised"], f"the fault never hit the worker: {result}"
    assert result["lost"] == 0, result
    assert result["duplicated"] == 0, result
    assert result["survived"], result


@pytest.mark.timeout(300)
def test_sigkill_mid_batch_then_fresh_worker(rig: Rig) -> None:
    check(kill9_mid_batch(rig, n=60, timeout_s=120))


@pytest.mark.timeout(300)
def test_redis_shutdown_and_restart(rig: Rig) -> None:
    result = redis_restart(rig, n=60, timeout_s=120)
    check(result)
    assert result["worker_pid_unchanged"] and result["reconnects"] >= 1


@pytest.mark.timeout(300)
def test_redis_sigkill_and_restart(rig: Rig) -> None:
    result = redis_restart(rig, n=60, kill=True, timeout_s=120)
    check(result)
    assert result["worker_pid_unchanged"] and result["reconnects"] >= 1


@pytest.mark.timeout(300)
def test_postgres_refuses_the_database_for_a_while(rig: Rig) -> None:
    result = postgres_refusal(rig, n=60, outage_s=20, timeout_s=120)
    check(result)
    assert result["refused"] and result["worker_pid_unchanged"]
    assert 0 < result["retry_lines"] <= result["retry_limit"]
    assert result["requeued_batches"] >= 1, "the outage never outlasted a batch's retries"


@pytest.mark.timeout(300)
def test_duplicate_deliveries_make_one_row(rig: Rig) -> None:
    result = duplicate_delivery(rig, n=30, timeout_s=120)
    check(result)
    assert result["rows_unchanged"]


@pytest.mark.timeout(300)
def test_malformed_and_pickled_messages_are_dead_letters(rig: Rig) -> None:
    try:
        result = malformed_and_pickle(rig, timeout_s=90)
    finally:  # test_dead_letters counts every dead letter in the database
        with rig.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM dead_letters WHERE task_id LIKE 'malformed_and_pickle-%'")
            )
    check(result)
    assert result["dead_letters"] == 4 and not result["pickle_executed"]


@pytest.mark.timeout(300)
def test_poison_mixed_into_a_batch(rig: Rig) -> None:
    result = poison_in_batch(rig, n=40, timeout_s=90)
    check(result)
    assert result["dead_letters"] == result["poison_messages"], result
    assert result["left_in_broker"] == 0 and result["serves_after"], result

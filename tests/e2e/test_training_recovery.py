"""Training runs through real workers: a SIGKILLed run is failed by heartbeat, retried, run once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.faults.rig import Rig
from harness.faults.training import DEAD_AFTER_S, SWEEP_S, kill9_training
from tests.conftest import TEST_BROKER_URL, real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


@pytest.mark.timeout(900)
def test_killed_run_fails_by_heartbeat_retry_succeeds_and_a_repeat_runs_once(
    tmp_path: Path, engine: Any
) -> None:
    data = real_data_or_skip()
    photos = sorted(str(p) for p in (data / "Positive").glob("*.jpg"))[:150]
    photos += sorted(str(p) for p in (data / "Negative").glob("*.jpg"))[:150]
    result = kill9_training(Rig(tmp_path, engine, TEST_BROKER_URL, photos, data), n=300)
    print(f"\n{result}")
    assert result["exercised"], result
    assert result["killed_status"] == "failed", result
    assert result["failed_after_s"] < DEAD_AFTER_S + 10 * SWEEP_S, result
    assert result["retry_status"] == "succeeded", result
    assert result["repeat_refused"], result
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["survived"], result

"""Self-healing through real processes: a SIGKILLed worker's photos finish without an operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.faults.rig import Rig
from harness.faults.selfheal import kill9_self_heal
from tests.conftest import TEST_BROKER_URL, real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


@pytest.fixture
def rig(tmp_path: Path, engine: Any) -> Rig:
    data = real_data_or_skip()
    photos = sorted(str(p) for p in (data / "Positive").glob("*.jpg"))[:40]
    photos += sorted(str(p) for p in (data / "Negative").glob("*.jpg"))[:40]
    return Rig(tmp_path, engine, TEST_BROKER_URL, photos, data)


@pytest.mark.timeout(400)
def test_sigkill_then_a_new_worker_finishes_every_photo_unaided(rig: Rig) -> None:
    result = kill9_self_heal(rig, n=60, timeout_s=90)
    print(f"\n{result}")
    assert result["exercised"], f"the kill never hit a worker holding messages: {result}"
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["survived"], result
    # an hour's visibility timeout: only the self-heal sweep can have returned them
    assert result["restore_lines"] >= 1, result
    assert result["recovered_s"] < 90, result

"""The Grafana dashboard's queries, evaluated by a real Prometheus scraping a real worker."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.dashboard import dashboard_run
from benchmarks.services import Photos
from harness.prometheus import MISSING
from tests.conftest import real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


@pytest.mark.timeout(600)
def test_every_panel_query_runs_on_prometheus_and_tracks_a_load_run(
    tmp_path: Path, engine: Any
) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip(MISSING)
    data = real_data_or_skip()
    paths = sorted(str(p) for p in (data / "Positive").glob("*.jpg"))[:60]
    paths += sorted(str(p) for p in (data / "Negative").glob("*.jpg"))[:60]
    out = tmp_path / "dashboard.png"
    result = dashboard_run(tmp_path, len(paths), out, Photos(data, paths, False), engine)
    print(f"\n{result}")
    assert result["problems"] == [], result["problems"]
    assert result["load"]["stored"] == 120 and result["load"]["lost"] == 0
    panels = {p["panel"]: p for p in result["panels"]}
    # The stat reads the rows PostgreSQL holds; queued drops to 0 instead of going stale.
    failed = result["missing"]
    assert panels["Rows by status"]["last"] == {"succeeded": 120, "queued": 0, "failed": failed}
    assert panels["Failures by error code"]["last"]["dead letters waiting"] == 0
    assert "not_found" in panels["Failures by error code"]["last"]
    assert panels["Queue depth"]["last"]["inference waiting"] == 0
    assert panels["Model each worker serves"]["series"] == 1
    assert out.stat().st_size > 50_000  # a drawn dashboard, not an empty canvas

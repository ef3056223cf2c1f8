"""A real worker's /metrics, /healthz and /readyz while it classifies photos from the queue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from db.tables import Result
from harness import images
from harness.procs import READY, free_port, wait_until, worker
from harness.scrape import scrape

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def test_metrics_match_the_rows_and_the_queue(tmp_path: Path, sessions, redis_client) -> None:
    from worker.app import app
    from worker.enqueue import submit

    root = tmp_path / "photos"
    root.mkdir()
    refs = []
    for i in range(40):
        (root / f"p{i}.jpg").write_bytes(images.jpeg(96, 96, color=(5 * i, 120, 60)))
        refs.append(str(root / f"p{i}.jpg"))
    for i in range(5):
        (root / f"bad{i}.jpg").write_bytes(images.not_an_image())
        refs.append(str(root / f"bad{i}.jpg"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CRACKQ_ALLOWED_ROOTS": str(root),
        "CRACKQ_METRICS_PORT": str(port),
        "CRACKQ_METRICS_DB_S": "0.2",
        "CRACKQ_BATCH_SIZE": "16",
    }
    with worker(tmp_path, "metrics", env=env) as w:
        assert wait_until(lambda: _answers(f"{base}/healthz"), 120), w.log()[-3000:]
        w.wait_for_log(READY, 180)
        assert wait_until(lambda: _status(f"{base}/readyz") == 200, 30), w.log()[-3000:]
        ready = requests.get(f"{base}/readyz", timeout=10).json()
        assert set(ready["checks"]) == {"broker", "database", "model", "consuming"}

        sub = submit(app, sessions, refs, batch_id="metrics")
        assert wait_until(lambda: _finished(sessions, sub.request_ids) == len(refs), 180)
        time.sleep(0.5)  # acks follow the commit; the database figures are at most 0.2 s old
        got = scrape(base)
        with sessions() as s:
            counts = dict(
                s.execute(select(Result.status, func.count()).group_by(Result.status)).all()
            )
            version = s.scalar(select(Result.model_version).where(Result.status == "succeeded"))
        waiting, unacked = redis_client.llen("inference"), redis_client.hlen("unacked")
        log = w.log()

    stored = {labels: v for (name, labels), v in got.items() if name == "crackq_rows_stored_total"}
    assert stored == {
        (("error_code", ""), ("status", "succeeded")): 40,
        (("error_code", "not_an_image"), ("status", "failed")): 5,
    }, log[-3000:]
    assert counts == {"succeeded": 40, "failed": 5}
    assert got[("crackq_results", (("error_code", ""), ("status", "succeeded")))] == 40
    assert got[("crackq_results", (("error_code", "not_an_image"), ("status", "failed")))] == 5
    assert got[("crackq_queue_messages", (("queue", "inference"), ("state", "waiting")))] == waiting
    assert got[("crackq_queue_messages", (("queue", "inference"), ("state", "unacked")))] == unacked
    assert got[("crackq_batch_size_sum", ())] == 40  # the five bad photos never reach the model
    assert got[("crackq_batch_size_count", ())] >= 40 / 16
    assert got[("crackq_batch_phase_seconds_count", (("phase", "predict"),))] >= 3
    assert got[("crackq_decode_seconds_count", ())] == 45
    assert got[("crackq_latency_seconds_count", (("mode", "patch"),))] == 45
    assert got[("crackq_model_info", (("serving", _serving(got)), ("version", version)))] == 1
    assert got[("process_resident_memory_bytes", ())] > 50e6


def _serving(got: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    (labels,) = [dict(lb) for name, lb in got if name == "crackq_model_info"]
    return labels["serving"]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def _finished(sessions, ids: list[str]) -> int:
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count()).where(Result.request_id.in_(ids), Result.status != "queued")
            )
            or 0
        )

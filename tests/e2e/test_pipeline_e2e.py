"""Queue to database with real Redis, PostgreSQL and a real `crackq worker` process."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from db.tables import Result
from harness import images, raw_images
from harness.procs import READY, worker
from tests.conftest import real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def wait_rows(sessions, ids: list[str], timeout: float) -> list[Result]:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as s:
            rows = list(s.scalars(select(Result).where(Result.request_id.in_(ids))))
        if (
            all(r.status != "queued" for r in rows)
            and len(rows) == len(ids)
            or time.monotonic() > deadline
        ):
            return rows
        time.sleep(0.5)


def test_200_real_photos_one_message_each(tmp_path: Path, sessions, database_url: str) -> None:
    from worker.app import app
    from worker.enqueue import send

    data = real_data_or_skip()
    photos = (
        sorted((data / "Positive").glob("*.jpg"))[:100]
        + sorted((data / "Negative").glob("*.jpg"))[:100]
    )
    ids = [f"e2e-{i}" for i in range(len(photos))]
    # Enqueued before the worker starts: the worker finds many images queued at once.
    rows = [
        {"request_id": i, "image_ref": str(p), "batch_id": "e2e", "submitted_at": _now()}
        for i, p in zip(ids, photos, strict=True)
    ]
    send(app, rows)
    env = {"CRACKQ_ALLOWED_ROOTS": str(data), "CRACKQ_BATCH_SIZE": "32"}
    with worker(tmp_path, "e2e", env=env) as w:
        w.wait_for_log(READY, 120)
        t0 = time.monotonic()
        stored = wait_rows(sessions, ids, 300)
        elapsed = time.monotonic() - t0
        log = w.log()
    assert len(stored) == 200, log[-3000:]
    assert {r.status for r in stored} == {"succeeded"}
    assert {r.label for r in stored} <= {"crack", "no_crack"}
    assert all(0.5 <= r.confidence <= 1.0 for r in stored)
    assert all(r.model_version for r in stored)
    sizes = [int(n) for n in re.findall(r"batch of (\d+) predicted", log)]
    assert sizes and max(sizes) > 1, "the worker ran no batch larger than one"
    assert max(r.batch_size for r in stored) == max(sizes)
    print(
        f"\nE2E: 200 rows in {elapsed:.1f} s = {200 / elapsed:.1f} rows/s; largest batch {max(sizes)}"
    )


def test_bad_references_fail_with_codes_and_worker_goes_on(tmp_path: Path, sessions) -> None:
    from worker.app import app
    from worker.enqueue import submit

    root = tmp_path / "images"
    root.mkdir()
    files = {
        "not_an_image": images.not_an_image(),
        "truncated_image": images.truncated_jpeg(),
        "empty_file": b"",
        "too_many_pixels": raw_images.bomb_png(30000, 30000),
    }
    refs, expected = [], {}
    for code, data in files.items():
        path = root / f"{code}.bin"
        path.write_bytes(data)
        refs.append(str(path))
        expected[str(path)] = code
    refs.append(str(root / "missing.jpg"))
    expected[str(root / "missing.jpg")] = "not_found"
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(images.jpeg(64, 64))
    refs.append(str(outside))
    expected[str(outside)] = "path_not_allowed"
    refs.append(str(root / ".." / "outside.jpg"))
    expected[str(root / ".." / "outside.jpg")] = "path_not_allowed"
    good = []
    for i in range(5):  # the good images come after the bad ones
        path = root / f"good{i}.jpg"
        path.write_bytes(images.jpeg(227, 227))
        good.append(str(path))
    env = {"CRACKQ_ALLOWED_ROOTS": str(root), "CRACKQ_BATCH_SIZE": "4"}
    with worker(tmp_path, "bad", env=env) as w:
        w.wait_for_log(READY, 120)
        sub = submit(app, sessions, refs + good, batch_id="bad-refs")
        stored = wait_rows(sessions, sub.request_ids, 120)
        assert w.proc is not None and w.proc.poll() is None, "the worker died"
    by_ref = {r.image_ref: r for r in stored}
    for ref, code in expected.items():
        assert by_ref[ref].status == "failed", ref
        assert by_ref[ref].error_code == code, (ref, by_ref[ref].error_message)
        assert by_ref[ref].error_message
    for ref in good:
        assert by_ref[ref].status == "succeeded"
        assert by_ref[ref].label in {"crack", "no_crack"}

    # Resubmitting the same request ids leaves the row count unchanged.
    with sessions() as s:
        before = s.scalar(select(func.count()).select_from(Result))
    again = submit(app, sessions, refs + good, request_ids=sub.request_ids, batch_id="bad-refs")
    assert again.enqueued == 0 and again.already_finished == len(sub.request_ids)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == before
        assert s.scalar(text("SELECT count(*) FROM crackq_results_v1")) == before


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)

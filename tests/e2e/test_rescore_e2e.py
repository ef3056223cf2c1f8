"""Re-scoring stored rows through a real worker: results take the new version's answers,
the history keeps both, a killed `crackq rescore` resumes, live photos are served meanwhile.

Two checkpoints with known answers (harness.colour_model): red-v1 (promoted) calls red
photos cracks, green-v2 green ones. Photos are stored by red-v1, then re-scored with
green-v2, which the worker has not loaded until the first re-score message names it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.tables import CrackMapRow, RescoreJob, Result, ResultScore
from harness import images
from harness.colour_model import COLOURS, register_colour_models
from harness.procs import READY, wait_until, worker

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
PER_COLOUR = 6
RED_IS_CRACK = {"red": "crack", "yellow": "crack", "green": "no_crack", "grey": "no_crack"}
GREEN_IS_CRACK = {"red": "no_crack", "yellow": "crack", "green": "crack", "grey": "no_crack"}


def crackq(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", *args]


def test_a_rescore_killed_midway_resumes_fills_the_history_and_live_photos_are_served(
    tmp_path: Path, sessions
) -> None:
    from worker.app import app
    from worker.enqueue import submit

    models = {"red-v1": "red", "green-v2": "green"}
    register_colour_models(sessions, tmp_path, models, promote="red-v1")
    photos = tmp_path / "photos"
    photos.mkdir()
    refs, colour_of = [], {}
    for colour, rgb in COLOURS.items():
        for i in range(PER_COLOUR):
            path = photos / f"{colour}-{i}.jpg"
            path.write_bytes(images.jpeg(64, 64, color=rgb, quality=95))
            refs.append(str(path))
            colour_of[str(path)] = colour
    big = photos / "big-red.jpg"  # mapped: 3 x 3 tiles of the model's 64 px patch
    big.write_bytes(images.jpeg(192, 192, color=COLOURS["red"], quality=95))

    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos), "CRACKQ_BATCH_SIZE": "8"}
    env |= {"CRACKQ_BACKEND": "torch", "CRACKQ_PRECISION": "fp32"}
    with worker(tmp_path, "rescore", env=env) as w:
        w.wait_for_log(READY, 180)
        old = submit(app, sessions, refs, batch_id="old").request_ids
        old += submit(app, sessions, [str(big)], batch_id="old", mode="map").request_ids
        colour_of[str(big)] = "red"

        def stored(batch: str, n: int, version: str | None = None) -> bool:
            where = [Result.batch_id == batch, Result.status == "succeeded"]
            if version is not None:
                where.append(Result.model_version == version)
            with sessions() as s:
                return s.scalar(select(func.count()).where(*where)) == n

        assert wait_until(lambda: stored("old", len(old)), 180), w.log()[-3000:]
        until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=1)
        command = crackq(
            "rescore", "--since", since.isoformat(), "--until", until.isoformat(),
            "--model", "green-v2", "--rate", "3", "--window", "4",
        )  # fmt: skip
        first_out = tmp_path / "first.out"
        with open(first_out, "wb") as out:
            first = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

        def answered() -> int:
            with sessions() as s:
                return int(
                    s.scalar(select(func.count()).where(Result.model_version == "green-v2")) or 0
                )

        try:
            assert wait_until(lambda: answered() >= 3, 120), first_out.read_text()
        finally:
            os.kill(first.pid, signal.SIGKILL)  # mid-run, as a crash would
            first.wait(10)
        assert answered() < len(old), "the first run finished before it was killed"
        live = submit(app, sessions, refs[:4], batch_id="live").request_ids
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "resuming rescore job" in second.stdout, second.stdout
        assert f"done: {len(old)} of {len(old)} rows answered by green-v2" in second.stdout
        assert "ETA" in second.stdout  # progress lines
        assert wait_until(lambda: stored("live", len(live)), 120), w.log()[-3000:]
        status = subprocess.run(crackq("rescore", "--status"), capture_output=True, text=True)
        log = w.log()
    assert "Traceback" not in log, log[-3000:]
    assert "loaded green-v2 for re-scoring" in log
    assert f"done    green-v2: scored {len(old)}/{len(old)}" in status.stdout, status.stdout

    ref_of = dict(zip(old, [*refs, str(big)], strict=True))
    with sessions() as s:
        rows = {r.request_id: r for r in s.scalars(select(Result))}
        history = s.execute(select(ResultScore.request_id, ResultScore.model_version,
                                   ResultScore.source)).all()  # fmt: skip
        mapped = s.get(CrackMapRow, old[-1])
        sent = s.scalars(select(RescoreJob.sent)).all()
    for rid in old:  # the latest score is green-v2's; the live timings stay
        row = rows[rid]
        assert (row.model_version, row.label) == (
            "green-v2",
            GREEN_IS_CRACK[colour_of[ref_of[rid]]],
        )
    assert rows[old[-1]].mode == "map" and rows[old[-1]].tiles == 9
    assert mapped is not None and mapped.model_version == "green-v2"
    for rid in live:  # live photos sent during the re-score: the promoted version's
        row = rows[rid]
        assert (row.model_version, row.label) == ("red-v1", RED_IS_CRACK[colour_of[row.image_ref]])
    by_id: dict[str, set[tuple[str, str]]] = {}
    for rid, version, source in history:
        by_id.setdefault(rid, set()).add((version, source))
    assert len(history) == 2 * len(old) + len(live)  # no duplicates: one row per pair
    assert all(by_id[rid] == {("red-v1", "live"), ("green-v2", "rescore")} for rid in old)
    assert all(by_id[rid] == {("red-v1", "live")} for rid in live)
    # one job; resumed from its cursor, not from the start (at most one window again)
    assert len(sent) == 1 and len(old) <= sent[0] <= len(old) + 4

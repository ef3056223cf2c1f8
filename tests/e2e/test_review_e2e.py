"""The review queue through a real worker: each rule's photos, the sample cap, the CLI.

A hand-set checkpoint with known answers (harness.colour_model: crack exactly when a photo
is strongly red) serves a worker. Red photos are confident cracks (p 0.95), grey ones
confident no-cracks (p 0.12); a dimmer red (215, 0, 0) scores p 0.56, within the band. A
256 px photo is mapped in 64 px tiles: a strong red region and, apart from it, a weak one.
An asset is inspected clean, then red. Every confident photo is drawn (rate 1), and the
cap lets 3 of them in.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from db.tables import Label, Result, ReviewEntry
from harness.colour_model import register_colour_models
from harness.procs import READY, worker
from worker.messages import AssetFields
from worker.waiting import wait_rows

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
RED, GREY, DIM = (255, 0, 0), (128, 128, 128), (215, 0, 0)
CAP = 3


def crackq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip


def solid(path: Path, rgb: tuple[int, int, int], side: int = 64) -> str:
    Image.new("RGB", (side, side), rgb).save(path, format="PNG")
    return str(path)


def two_region_map(path: Path) -> str:
    """256 px, 4 x 4 tiles of 64: two red tiles top left, two dim ones bottom right."""
    img = Image.new("RGB", (256, 256), GREY)
    for (r, c), rgb in {(0, 0): RED, (0, 1): RED, (3, 2): DIM, (3, 3): DIM}.items():
        img.paste(rgb, (c * 64, r * 64, c * 64 + 64, r * 64 + 64))
    img.save(path, format="PNG")
    return str(path)


def test_rules_fill_the_queue_and_reviewers_answer_from_the_cli(tmp_path: Path, sessions) -> None:
    from worker.app import app
    from worker.enqueue import submit

    register_colour_models(sessions, tmp_path, {"red-v1": "red"}, promote="red-v1")
    photos = tmp_path / "photos"
    photos.mkdir()
    refs = {f"red-{i}": solid(photos / f"red-{i}.png", RED) for i in range(4)}
    refs |= {f"grey-{i}": solid(photos / f"grey-{i}.png", GREY) for i in range(4)}
    refs |= {f"dim-{i}": solid(photos / f"dim-{i}.png", DIM) for i in range(3)}
    refs["map"] = two_region_map(photos / "map.png")
    t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.timezone.utc)
    visits = {
        "bridge-v1": (solid(photos / "bridge-v1.png", GREY), t0),
        "bridge-v2": (solid(photos / "bridge-v2.png", RED), t0 + dt.timedelta(days=30)),
    }

    env = {"CRACKQ_ALLOWED_ROOTS": str(photos), "CRACKQ_BATCH_SIZE": "8"}
    env |= {"CRACKQ_BACKEND": "torch", "CRACKQ_PRECISION": "fp32"}
    env |= {"CRACKQ_REVIEW_SAMPLE_RATE": "1", "CRACKQ_REVIEW_SAMPLE_PER_HOUR": str(CAP)}

    with worker(tmp_path, "review", env=env) as w:
        w.wait_for_log(READY, 180)
        submit(app, sessions, list(refs.values()), request_ids=list(refs), batch_id="review")
        for rid, (ref, when) in visits.items():  # the second visit after the first is stored
            asset = AssetFields(asset_id="bridge", inspection_id=rid, captured_at=when)
            submit(app, sessions, [ref], request_ids=[rid], asset=asset)
            done = wait_rows(sessions, [rid], 120, progress=False)
            assert sum(done.values()) == 1 and not done.get("queued"), w.log()[-3000:]
        done = wait_rows(sessions, list(refs), 180, progress=False)
        assert not done.get("queued"), w.log()[-3000:]
        log = w.log()
    assert "Traceback" not in log, log[-3000:]

    with sessions() as s:
        rows = {r.request_id: r for r in s.scalars(select(Result))}
        entries = {e.request_id: e.reason for e in s.scalars(select(ReviewEntry))}
    assert all(r.status == "succeeded" for r in rows.values()), {
        k: r.error_message for k, r in rows.items()
    }
    assert rows["map"].mode == "map" and rows["map"].crack_regions == 2
    sampled = {rid for rid, reason in entries.items() if reason == "sample"}
    assert {rid: r for rid, r in entries.items() if rid not in sampled} == {
        "dim-0": "uncertain",
        "dim-1": "uncertain",
        "dim-2": "uncertain",
        "map": "borderline_map",
        "bridge-v2": "asset_changed",
    }
    confident = {*(f"red-{i}" for i in range(4)), *(f"grey-{i}" for i in range(4)), "bridge-v1"}
    assert len(sampled) == CAP and sampled <= confident  # every one drawn, the cap held

    listed = json.loads(crackq("review", "--json").stdout)
    assert {e["request_id"] for e in listed} == set(entries)
    dim0 = next(e for e in listed if e["request_id"] == "dim-0")
    assert dim0["reason"] == "uncertain" and dim0["image_ref"] == refs["dim-0"]
    assert 0.5 <= dim0["confidence"] < 0.65

    out = crackq("review", "answer", "dim-0", "crack", "--by", "alice")
    assert out.returncode == 0 and "dim-0: labelled crack by alice" in out.stdout, out.stderr
    out = crackq("review", "answer", "dim-1", "skip", "--by", "bob")
    assert out.returncode == 0, out.stderr
    out = crackq("review", "answer", "dim-0", "no_crack", "--by", "carol")
    assert out.returncode == 2 and "already labelled by alice" in out.stderr
    with sessions() as s:
        label = s.scalars(select(Label)).one()
    assert (label.request_id, label.label, label.labelled_by) == ("dim-0", "crack", "alice")
    assert label.labelled_at > t0
    listed = json.loads(crackq("review", "--json").stdout)
    assert {e["request_id"] for e in listed} == set(entries) - {"dim-0", "dim-1"}

    status = crackq("status")
    assert status.returncode == 0, status.stderr
    n_open = len(entries) - 2
    assert (
        f"review queue: {n_open} open (asset_changed 1, borderline_map 1, sample {CAP}, "
        "uncertain 1); 1 labelled, 1 skipped"
    ) in status.stdout, status.stdout
    assert "labels: 1 crack, 0 no_crack (1 from the review queue)" in status.stdout

    out = crackq("review", "undo", "dim-0")
    assert out.returncode == 0, out.stderr
    with sessions() as s:
        assert s.scalars(select(Label)).first() is None
    assert "dim-0" in {e["request_id"] for e in json.loads(crackq("review", "--json").stdout)}
    text = crackq("review", "--reason", "uncertain").stdout
    assert text.startswith(f"review queue: {n_open + 1} open") and "dim-0" in text

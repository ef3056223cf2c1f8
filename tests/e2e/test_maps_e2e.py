"""Crack maps through the queue: a real worker maps mosaics of real held-out patches.

The model is trained here on real patches (64 px, two epochs over 800 photos of the
training side of the grouped split) and told it learned from 227 px patches, as a
checkpoint from `crackq finetune` on that data is. The mosaics are built from patches of
the other side, so the worker has never seen them, and their layout is known.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import maps
from db.tables import Result
from harness.mosaics import build_mosaic, held_out_patches, save_mosaic
from harness.procs import READY, worker
from models.datasets import from_manifest, grouped_split
from models.recipe import Recipe
from models.training import fine_tune, save_trained
from tests.conftest import real_data_or_skip
from tests.e2e.test_cli import crackq

pytestmark = [pytest.mark.usefixtures("redis_client", "clean_tables"), pytest.mark.realdata]
PATCH = 227


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = real_data_or_skip()
    train = grouped_split(from_manifest(data / "manifest.csv"), 0.2, seed=0).train
    rng = random.Random(0)
    picked = [s for label in (0, 1) for s in rng.sample([s for s in train if s[1] == label], 400)]
    val = rng.sample([s for s in train if s not in picked], 200)
    recipe = Recipe(batch_size=32, epochs=2, image_size=64, init="random", num_workers=0, seed=0)
    out = tmp_path_factory.mktemp("map-model")
    result = fine_tune(picked, val, recipe, out_dir=out, device="cpu")
    assert result.metrics["accuracy"] >= 0.85, result.metrics
    path = out / "map-e2e.pt"
    save_trained(result, path, "map-e2e", patch_size=PATCH)
    return path


def wait_final(sessions, ids: list[str], timeout: float) -> dict[str, Result]:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as s:
            rows = {
                r.request_id: r for r in s.scalars(select(Result).where(Result.request_id.in_(ids)))
            }
        if len(rows) == len(ids) and all(r.status != "queued" for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_a_worker_maps_mosaics_and_their_regions_cover_the_crack_cells(
    tmp_path: Path, sessions, checkpoint: Path
) -> None:
    from worker.app import app
    from worker.enqueue import submit

    data = real_data_or_skip()
    crack, clean = held_out_patches(data)
    rng = random.Random(7)
    root = tmp_path / "photos"
    root.mkdir()
    cracked = build_mosaic(crack, clean, 4, 6, rng, crack_cells=6)
    plain = build_mosaic(crack, clean, 4, 6, rng, crack_cells=0)
    save_mosaic(cracked, root / "cracked.jpg")
    save_mosaic(plain, root / "plain.jpg")
    (root / "patch.jpg").write_bytes(Path(crack[0]).read_bytes())  # 227 px: classified whole
    env = {
        "CRACKQ_ALLOWED_ROOTS": str(root),
        "CRACKQ_MODEL_CHECKPOINT": str(checkpoint),
        "CRACKQ_MAP_OVERLAP": "0",  # tiles are the mosaic's cells
        "CRACKQ_INT8": "off",
    }
    with worker(tmp_path, "maps", env=env) as w:
        w.wait_for_log(READY, 120)
        refs = [str(root / n) for n in ("cracked.jpg", "plain.jpg", "patch.jpg")]
        ids = ["cracked", "plain", "patch"]
        submit(app, sessions, refs, request_ids=ids, batch_id="maps-e2e")
        rows = wait_final(sessions, ids, 180)
        log = w.log()
    assert len(rows) == 3 and all(r.status == "succeeded" for r in rows.values()), log[-3000:]
    assert rows["patch"].mode == "patch" and rows["patch"].tiles is None
    assert rows["cracked"].mode == rows["plain"].mode == "map"
    assert rows["cracked"].tiles == rows["plain"].tiles == 24
    with sessions() as s:
        stored = maps.read_map(s, "cracked")
        clean_map = maps.read_map(s, "plain")
    assert stored is not None and clean_map is not None
    assert (stored["rows"], stored["cols"], stored["tile"], stored["stride"]) == (
        4,
        6,
        PATCH,
        PATCH,
    )
    probs = np.array(stored["probabilities"])
    truth = cracked.truth
    recall = float((probs[truth] >= 0.5).mean())
    assert recall >= 0.8, (probs.round(2), truth)
    # every crack cell the map found lies inside one of the stored regions' boxes
    found = [(r, c) for r, c in zip(*np.nonzero(truth & (probs >= 0.5)), strict=True)]
    boxes = [(g["x0"], g["y0"], g["x1"], g["y1"]) for g in stored["regions"]]
    for r, c in found:
        x, y = c * PATCH, r * PATCH
        assert any(
            x0 <= x and y0 <= y and x + PATCH <= x1 and y + PATCH <= y1 for x0, y0, x1, y1 in boxes
        )
    assert rows["cracked"].label == "crack" and rows["cracked"].crack_regions >= 1
    assert rows["cracked"].crack_probability == pytest.approx(
        max(g["max_probability"] for g in stored["regions"])
    )
    false_alarms = int((np.array(clean_map["probabilities"]) >= 0.5).sum())
    assert false_alarms <= 3, clean_map["probabilities"]
    assert (rows["plain"].label == "crack") == (rows["plain"].crack_regions > 0)
    assert "mapped cracked" in log

    # the operator's view of the same map
    menv = {"CRACKQ_ALLOWED_ROOTS": str(root)}
    shown = crackq("map", "cracked", "--format", "json", env=menv)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["probabilities"] == stored["probabilities"] and doc["label"] == "crack"
    assert [g["box"] for g in doc["regions"]] == [list(b) for b in boxes]
    overlay = tmp_path / "overlay.png"
    drawn = crackq("map", "cracked", "-o", str(overlay), env=menv)
    assert drawn.returncode == 0 and overlay.stat().st_size > 10_000, drawn.stderr

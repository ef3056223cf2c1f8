"""`python -m benchmarks.run --suite maps` on two tiny mosaics and a tiny random-init checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.procs import ROOT
from models.checkpoints import ServingConfig, save_checkpoint
from models.network import build_model
from tests.conftest import real_data_or_skip

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # ~15 s: builds a ResNet50 in a child
RATES = ("cell_precision", "cell_recall", "cell_f1", "photo_accuracy", "whole_photo_accuracy")
ROW_KEYS = {
    "bench", "checkpoint", "numerics", "threshold", "image_size", "tile", "patch", "offset",
    "photos", "grid", "seed", "host", "torch_threads", "overlap", "min_region_tiles", "stride",
    *RATES, "cell_confusion", "photo_confusion", "tiles", "tiles_per_s", "map_s",
}  # fmt: skip


def run_suite(*args: str) -> subprocess.CompletedProcess[str]:
    # One thread: the suite shares this host with other work, and 32 px tiles need no more.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", "maps", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("maps") / "tiny.pt"
    serving = ServingConfig(image_size=32, threshold=0.5).to_dict()
    save_checkpoint(path, build_model(), version="tiny", serving=serving)
    return path


def test_suite_prints_a_line_per_configuration_and_a_summary(tiny_checkpoint: Path) -> None:
    data = real_data_or_skip()
    out = run_suite("--checkpoint", str(tiny_checkpoint), "--data", str(data), "--photos", "2",
                    "--rows", "3", "--cols", "4", "--patch", "32", "--tile", "32",
                    "--overlaps", "0,0.5", "--min-region-tiles", "1,3", "--offset", "random",
                    "--backend", "torch", "--numerics", "fp32", "--threads", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]
    assert [(r["overlap"], r["min_region_tiles"]) for r in rows] == [
        (0.0, 1), (0.0, 3), (0.5, 1), (0.5, 3)
    ]  # fmt: skip
    for r in rows:
        assert set(r) == ROW_KEYS
        assert r["bench"] == "maps" and r["checkpoint"] == "tiny" and r["image_size"] == 32
        assert r["numerics"] == "cpu-float32-nchw" and r["photos"] == 2 and r["grid"] == [3, 4]
        assert all(0.0 <= r[k] <= 1.0 for k in RATES), r
        assert sum(r["cell_confusion"].values()) == 2 * 3 * 4  # every cell of both photos
        assert sum(r["photo_confusion"].values()) == 2
        # one photo is clean, the other has a crack walk of 3-12 cells
        assert 3 <= r["cell_confusion"]["tp"] + r["cell_confusion"]["fn"] <= 12
        assert r["photo_confusion"]["tp"] + r["photo_confusion"]["fn"] == 1
        assert r["tiles"] > 0 and r["tiles_per_s"] > 0 and r["map_s"] >= 0
    assert [r["stride"] for r in rows] == [32, 32, 16, 16]
    assert rows[2]["tiles"] > rows[0]["tiles"]  # overlapping tiles: more of them
    # cells do not depend on min_region_tiles, photo verdicts may
    assert rows[0]["cell_confusion"] == rows[1]["cell_confusion"]
    assert summary["overlap"] == "summary" and summary["bench"] == "maps"
    best = (summary["best_overlap"], summary["best_min_region_tiles"])
    assert best in {(r["overlap"], r["min_region_tiles"]) for r in rows}
    assert summary["best_photo_accuracy"] == max(r["photo_accuracy"] for r in rows)
    assert summary["whole_photo_accuracy"] == rows[0]["whole_photo_accuracy"]
    assert sum(summary["whole_photo_confusion"].values()) == 2 and summary["wall_s"] > 0
    assert "| overlap |" in out.stderr and "| 0.5 | 3 |" in out.stderr  # the markdown table


def test_suite_refuses_bad_overlaps_and_unknown_checkpoints(tmp_path: Path) -> None:
    out = run_suite("--checkpoint", str(tmp_path / "none.pt"), "--overlaps", "0,1")
    assert out.returncode == 2 and "--overlaps" in out.stderr
    real_data_or_skip()
    out = run_suite("--checkpoint", str(tmp_path / "none.pt"), "--photos", "1")
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr

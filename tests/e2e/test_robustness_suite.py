"""`python -m benchmarks.run --suite robustness` on a tiny random-init checkpoint and real photos."""

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
from models.shifts import SHIFTS
from tests.conftest import real_data_or_skip

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # ~10 s: builds ResNet50s in children
PER_CLASS = 10


def run_suite(*args: str) -> subprocess.CompletedProcess[str]:
    # One thread: the suite shares this host with other work, and 32 px images need no more.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", "robustness", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("robustness") / "tiny.pt"
    serving = ServingConfig(image_size=32, threshold=0.5).to_dict()
    save_checkpoint(path, build_model(), version="tiny", serving=serving, recipe={"seed": 0})
    return path


def test_suite_prints_a_line_per_shift_and_a_summary(tiny_checkpoint: Path) -> None:
    data = real_data_or_skip()
    out = run_suite("--checkpoint", str(tiny_checkpoint), "--data", str(data),
                    "--n", str(PER_CLASS), "--threads", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [d["shift"] for d in lines] == ["clean", *SHIFTS, "summary"]
    rows, summary = lines[:-1], lines[-1]
    for row in rows:
        assert row["bench"] == "robustness" and row["checkpoint"] == "tiny"
        assert row["photos"] == 2 * PER_CLASS and row["image_size"] == 32
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["f1"] <= 1.0
        assert row["auc"] is not None and 0.0 <= row["auc"] <= 1.0  # both classes present
        assert sum(map(sum, row["confusion"])) == 2 * PER_CLASS
        assert row["host"] and row["numerics"] == "cpu-float32-nchw"
    shifted = rows[1:]
    assert summary["clean_accuracy"] == rows[0]["accuracy"]
    assert summary["mean_accuracy"] == pytest.approx(
        sum(r["accuracy"] for r in shifted) / len(shifted), abs=1e-4
    )
    assert summary["worst_accuracy"] == min(r["accuracy"] for r in shifted)
    assert summary["worst_shift"] in SHIFTS and summary["photos"] == 2 * PER_CLASS
    assert "| shift |" in out.stderr and "| texture |" in out.stderr  # the markdown table


def test_suite_refuses_a_checkpoint_without_a_checksum(tiny_checkpoint: Path) -> None:
    bare = tiny_checkpoint.with_name("bare.pt")
    bare.write_bytes(tiny_checkpoint.read_bytes())  # no .sha256 sidecar beside it
    out = run_suite("--checkpoint", str(bare), "--n", "1", "--shifts", "blur")
    assert out.returncode != 0
    assert "no known sha256" in out.stderr and "Traceback" not in out.stderr

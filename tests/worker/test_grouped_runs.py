"""Manifests with a `group` column through a run: the split, per-group figures, the margin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from db import registry, runs
from harness.colour_model import register_colour_models
from models.datasets import from_manifest, grouped_split
from worker.cli.main import build_parser
from worker.cli.models import VERSION_FIELDS, run_models
from worker.cli.output import row_fields
from worker.finetune import execute_run
from worker.modelcard import model_card
from worker.settings import Settings
from worker.trainingdata import DataSpec, prepare, summary


def _manifest(root: Path, groups: int | None) -> Path:
    """root/m.csv over the synthetic photos; photo i of each class in group `src{i % groups}`."""
    lines = ["path,label" + (",group" if groups else "")]
    for folder, label in (("Positive", "crack"), ("Negative", "no_crack")):
        for i, p in enumerate(sorted((root / folder).glob("*.jpg"))):
            lines.append(f"{folder}/{p.name},{label}" + (f",src{i % groups}" if groups else ""))
    manifest = root / ("m.csv" if groups else "plain.csv")
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_prepare_splits_by_the_group_column_and_says_so(synthetic_root: Path, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    spec = DataSpec(manifests=[str(_manifest(synthetic_root, 8))])
    data = prepare(spec, None, settings, 0.3, 0)
    train = {data.groups[str(Path(p).resolve())] for p, _ in data.parts.train}
    val = {data.groups[str(Path(p).resolve())] for p, _ in data.parts.val}
    assert not train & val and len(train | val) == 8
    assert "grouped by the manifests' group column (8 groups)" in summary(data, spec, [])["split"]

    plain = DataSpec(manifests=[str(_manifest(synthetic_root, None))])
    same = prepare(plain, None, settings, 0.3, 0)
    assert same.groups == {}
    assert same.parts == grouped_split(from_manifest(plain.manifests[0]), 0.3, 0)
    assert summary(same, plain, [])["split"] == "grouped by file-number ranges"


@pytest.mark.slow
def test_crackq_finetune_with_groups_reports_them_and_the_margin_holds_it_back(
    sessions, redis_client, synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    register_colour_models(sessions, tmp_path, {"red-v0": "red"}, promote="red-v0")
    flags = ["--epochs", "1", "--batch-size", "16", "--image-size", "64", "--num-workers", "0",
             "--init", "random", "--val-fraction", "0.3", "--precise-bn-images", "0",
             "--shift-check-photos", "0"]  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "finetune", "--manifest",
         str(_manifest(synthetic_root, 8)), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    # the training worker's part, in this process; a margin no model can reach
    settings = Settings(data_dir=tmp_path / "state", int8="off", promote_auc_margin=1.0)
    outcome = execute_run(run_id, settings, sessions, lambda _: None)
    with sessions() as s:
        row = runs.get_run(s, run_id)
        card = model_card(row_fields(registry.get(s, row.model_version), VERSION_FIELDS))
    assert outcome["status"] == "succeeded", row.message
    assert not row.promoted and "CRACKQ_PROMOTE_AUC_MARGIN" in row.message, row.message
    groups, parent = row.metrics["groups"], row.metrics["baseline"]["groups"]
    assert groups["count"] == parent["count"] and 1 < groups["count"] < 8
    assert sum(r["n"] for r in groups["worst"]) == row.metrics["n"]
    assert {r["group"] for r in groups["worst"]} == {r["group"] for r in parent["worst"]}
    assert "grouped by the manifests' group column" in row.data_summary["split"]
    report = json.loads((tmp_path / "state" / "runs" / run_id / "metrics.json").read_text())
    assert report["metrics"]["groups"]["worst"] == groups["worst"]
    worst = groups["worst"][0]
    assert f"per group ({groups['count']} groups" in card and worst["group"] in card
    assert run_models(build_parser().parse_args(["models", "list"])) == 0
    listed = capsys.readouterr().out
    assert f"worst_group={worst['group']}:{worst['accuracy']:.4f}" in listed

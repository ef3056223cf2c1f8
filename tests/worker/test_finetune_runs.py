"""Training runs end cleanly on bad data and cancel; the promoted model keeps serving."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from db import registry
from models.checkpoints import save_checkpoint
from models.network import build_model
from models.recipe import Recipe
from models.shifts import SHIFTS
from tests.worker.finetuning import RECIPE, run
from worker.cli.models import VERSION_FIELDS
from worker.cli.output import row_fields
from worker.modelcard import model_card
from worker.settings import Settings
from worker.trainingdata import DataSpec

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.fixture
def promoted(sessions, tmp_path) -> str:
    path = tmp_path / "v0.pt"
    sha = save_checkpoint(path, build_model(), version="v0")
    with sessions() as s, s.begin():
        registry.register(
            s, version="v0", checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
        )
        registry.promote(s, "v0")
    return "v0"


def still_promoted(sessions, version: str) -> bool:
    with sessions() as s:
        return registry.promoted(s).version == version


@pytest.mark.slow
def test_corrupt_training_image_is_skipped_counted_and_reported(
    sessions, tmp_path, synthetic_root
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    (data / "Positive" / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    outcome, row, reports = run(sessions, tmp_path, DataSpec(folders=[str(data)]))
    assert outcome["status"] == "succeeded", row.message
    assert row.data_summary["skipped"] == 1
    assert "zz_corrupt.jpg" in str(row.data_summary["skipped_examples"])
    # the epoch's report reached Flower (an "int8" one may follow it when saving was slow)
    assert "epoch" in [r["event"] for r in reports]


def test_empty_class_fails_clearly_and_keeps_the_promoted_model(
    sessions, tmp_path, synthetic_root, promoted
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    for p in (data / "Negative").iterdir():
        p.unlink()
    outcome, row, _ = run(sessions, tmp_path, DataSpec(folders=[str(data)]))
    assert outcome["status"] == "failed" and row.status == "failed"
    assert "Negative" in row.message or "no_crack" in row.message
    assert still_promoted(sessions, promoted)


def test_unreadable_data_path_fails_clearly(sessions, tmp_path, promoted) -> None:
    outcome, row, _ = run(sessions, tmp_path, DataSpec(folders=[str(tmp_path / "nope")]))
    assert row.status == "failed" and "does not exist" in row.message
    assert still_promoted(sessions, promoted)


def test_cancel_stops_the_run_and_keeps_the_promoted_model(
    sessions, tmp_path, synthetic_root, promoted
) -> None:
    outcome, row, _ = run(sessions, tmp_path, DataSpec(folders=[str(synthetic_root)]), cancel=True)
    assert outcome["status"] == "cancelled" and row.status == "cancelled"
    assert "cancel" in row.message
    assert still_promoted(sessions, promoted)
    with sessions() as s:
        assert [v.version for v in registry.list_versions(s)] == ["v0"]


@pytest.mark.slow
def test_a_worse_model_is_registered_but_not_promoted(
    sessions, tmp_path, synthetic_root, promoted
) -> None:
    # The promoted v0 is random; a run that starts from it and cannot beat it stays a candidate.
    recipe = Recipe(
        epochs=1,
        batch_size=16,
        image_size=64,
        num_workers=0,
        init="checkpoint",
        lr=1e-9,
        val_fraction=0.3,
    )
    outcome, row, _ = run(sessions, tmp_path, DataSpec(folders=[str(synthetic_root)]), recipe)
    assert row.status == "succeeded"
    assert row.metrics["baseline"]["version"] == "v0"
    if not row.promoted:
        assert still_promoted(sessions, promoted)
        assert "did not beat" in row.message


@pytest.mark.slow
def test_a_run_reports_its_shift_check_and_zero_turns_it_off(
    sessions, tmp_path, synthetic_root
) -> None:
    spec = DataSpec(folders=[str(synthetic_root)])
    settings = Settings(data_dir=tmp_path / "state", int8="off")
    recipe = dataclasses.replace(RECIPE, shift_check_photos=3)
    _, row, reports = run(sessions, tmp_path, spec, recipe, settings=settings)
    assert row.status == "succeeded", row.message
    check = row.metrics["shift_check"]
    assert [r["shift"] for r in check["shifts"]] == ["clean", *SHIFTS]
    assert check["photos"] == 6 and check["per_class"] == {"no_crack": 3, "crack": 3}
    assert "shift_check" in [r["event"] for r in reports]
    report = json.loads((tmp_path / "state" / "runs" / row.run_id / "metrics.json").read_text())
    assert report["metrics"]["shift_check"]["worst_shift"] == check["worst_shift"]
    with sessions() as s:
        card = model_card(row_fields(registry.get(s, row.model_version), VERSION_FIELDS))
    assert "shift check: 6 of its validation photos (3 crack, 3 no_crack)" in card
    assert f"training: {sum(row.data_summary['train'].values())} photos" in card

    off = dataclasses.replace(RECIPE, shift_check_photos=0)
    _, row, _ = run(sessions, tmp_path, spec, off, settings=settings)
    assert row.status == "succeeded", row.message
    assert "shift_check" not in row.metrics

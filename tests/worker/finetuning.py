"""Running a fine-tuning run in the test process, as the training task does."""

from __future__ import annotations

from pathlib import Path

from db import runs
from models.recipe import Recipe
from worker.finetune import execute_run
from worker.settings import Settings
from worker.trainingdata import DataSpec

RECIPE = Recipe(
    epochs=1, batch_size=16, image_size=64, num_workers=0, init="random", val_fraction=0.3
)


def run(
    sessions,
    tmp_path: Path,
    spec: DataSpec,
    recipe: Recipe = RECIPE,
    cancel: bool = False,
    settings: Settings | None = None,
):
    run_id = f"r{len(list(tmp_path.iterdir()))}"
    with sessions() as s, s.begin():
        runs.create_run(
            s, run_id, {"recipe": recipe.to_dict(), "auto_promote": True}, spec.to_dict()
        )
        if cancel:
            runs.request_cancel(s, run_id)
    reports: list[dict] = []
    settings = settings or Settings(data_dir=tmp_path / "state")
    outcome = execute_run(run_id, settings, sessions, reports.append)
    with sessions() as s:
        return outcome, runs.get_run(s, run_id), reports

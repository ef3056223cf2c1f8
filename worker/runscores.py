"""What a run measures beside training: the parent on the same split, the shift check, metrics.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.checkpoints import model_from_checkpoint, serving_config
from models.datasets import Sample
from models.evaluation import evaluate, metrics
from models.imagedata import Loader
from models.loop import make_loader
from models.numerics import resolve_numerics
from models.recipe import Recipe
from models.shiftcheck import pick, shift_check
from models.training import TrainResult
from models.transforms import EvalPreset

log = logging.getLogger(__name__)
Json = dict[str, Any]


def score_parent(
    version: str, payload: Json, val: list[Sample], load: Loader, recipe: Recipe, device: str
) -> Json:
    """The promoted model's metrics on this run's validation set."""
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    model = model_from_checkpoint(payload).to(numerics.device)
    preset = EvalPreset(recipe.image_size)
    loader = make_loader(val, preset, recipe.batch_size, False, recipe, False, load)
    scored = evaluate(model, loader, numerics)
    return {"version": version, **metrics(scored.labels, scored.p_crack)}


def check_shifts(
    result: TrainResult, val: list[Sample], load: Loader, device: str, check: Callable[[], None]
) -> Json | None:
    """The trained model on `recipe.shift_check_photos` validation photos per class, clean
    and under every shift, at the threshold serving will use; None when the recipe says 0."""
    recipe = result.recipe
    if recipe.shift_check_photos == 0:
        return None
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    serving = serving_config(result.metadata())
    model = result.model.to(numerics.device)
    try:
        report = shift_check(
            model, pick(val, recipe.shift_check_photos, recipe.seed), load, numerics,
            size=serving.image_size, threshold=serving.threshold, batch=recipe.batch_size,
            seed=recipe.seed, check=check,
        )  # fmt: skip
    finally:
        result.model = model.cpu()
    log.info(
        "shift check: %d photos, clean %.4f, mean over shifts %.4f, worst %s %.4f, %.1f s",
        report["photos"], report.get("clean_accuracy", 0), report.get("mean_accuracy", 0),
        report.get("worst_shift"), report.get("worst_accuracy", 0), report["seconds"],
    )  # fmt: skip
    return report


def write_metrics(
    out_dir: Path, version: str, result: TrainResult, data: Json, baseline: Json | None
) -> None:
    """metrics.json: the run's recipe, in-domain and shift-check figures, data and baseline."""
    report = {"version": version, **result.metadata(), "data": data}
    text = json.dumps({**report, "promoted_baseline": baseline}, indent=2, default=str)
    (out_dir / "metrics.json").write_text(text)

"""What a run measures beside training: the parent on its split, per-group figures, shifts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.checkpoints import model_from_checkpoint, serving_config
from models.datasets import Groups, Sample, group_of
from models.evaluation import EvalResult, evaluate, group_metrics, metrics
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
    version: str,
    payload: Json,
    val: list[Sample],
    load: Loader,
    recipe: Recipe,
    device: str,
    groups: Groups | None = None,
) -> Json:
    """The promoted model's metrics on this run's validation set; per group (at the
    parent's serving threshold) under "groups" when the manifests name groups."""
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    model = model_from_checkpoint(payload).to(numerics.device)
    preset = EvalPreset(recipe.image_size)
    loader = make_loader(val, preset, recipe.batch_size, False, recipe, False, load)
    scored = evaluate(model, loader, numerics)
    out = {"version": version, **metrics(scored.labels, scored.p_crack)}
    report = by_group(val, groups or {}, scored, serving_config(payload).threshold)
    return out if report is None else {**out, "groups": report}


def by_group(
    val: list[Sample], groups: Groups, scored: EvalResult, threshold: float
) -> Json | None:
    """Per-group figures of scored validation photos (evaluation.group_metrics); None
    without groups."""
    if not groups:
        return None
    named = group_of(val, groups)
    return group_metrics(
        [named[i] for i in scored.indices], scored.labels, scored.p_crack, threshold
    )


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

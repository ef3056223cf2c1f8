"""Fine-tuning runs: fine_tune with progress/cancel callbacks, its result and checkpoint."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import plots
from models.checkpoints import save_checkpoint
from models.datasets import DatasetError, Sample, class_counts
from models.evaluation import EvalResult, evaluate
from models.imagedata import Loader, load_rgb
from models.loop import Loaders, guarded, lr_schedule, precise_bn, run_loaders, train_one_epoch
from models.network import initial_model
from models.numerics import Numerics, resolve_numerics
from models.progress import Progress, RunState
from models.recipe import Recipe

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A finished run: the model holds the best epoch's weights (by val AUC, then accuracy)."""

    model: nn.Module
    recipe: Recipe
    init: str  # "imagenet" | "checkpoint" | "random"
    init_note: str
    numerics: str
    history: list[dict[str, Any]]
    metrics: dict[str, Any]  # the best epoch's validation metrics (see evaluation.metrics)
    best_epoch: int
    train_images: int
    val_images: int
    skipped: list[dict[str, str]]  # unreadable images: {"path", "reason"}
    images_per_s: float
    wall_s: float
    chart_path: Path
    grid_path: Path
    # the best epoch's validation scores (indices into the validation samples), not stored
    val_scores: EvalResult | None = None

    def metadata(self) -> dict[str, Any]:
        """JSON-like summary to store with the run and inside the checkpoint."""
        return {
            "recipe": self.recipe.to_dict(),
            "init": self.init,
            "init_note": self.init_note,
            "numerics": self.numerics,
            "metrics": self.metrics,
            "threshold": self.metrics["chosen_threshold"],
            "history": self.history,
            "best_epoch": self.best_epoch,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "skipped": len(self.skipped),
            "images_per_s": self.images_per_s,
            "wall_s": self.wall_s,
        }


def save_trained(result: TrainResult, path: Path, version: str, **extra: Any) -> str:
    """Checkpoint the result's model with its metadata, `version` and `extra`; the sha256."""
    return save_checkpoint(path, result.model, version=version, **result.metadata(), **extra)


def fine_tune(
    train_samples: list[Sample],
    val_samples: list[Sample],
    recipe: Recipe,
    *,
    out_dir: Path,
    init_state_dict: dict[str, Any] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str = "auto",
    progress_every: int = 10,
    load: Loader = load_rgb,
) -> TrainResult:
    """Fine-tune a ResNet50 per `recipe`; validate every epoch and keep the best weights.

    progress gets {"event": "step"|"epoch", epoch, epochs, step, steps, loss, images_per_s,
    lr, eta_s} every `progress_every` steps and at each epoch end, where it also gets
    "train_loss" and "val" (headline metrics). should_stop runs before every batch;
    True, or passing recipe.time_limit_s, raises TrainingCancelled. Writes training.png
    and predictions.png into out_dir. init_state_dict is the promoted model's weights.
    `load` reads every training and validation image (see models.imagedata.Loader).
    """
    started = time.perf_counter()
    train = _training_set(train_samples, recipe)
    if not val_samples:
        raise DatasetError("the validation set is empty")
    torch.manual_seed(recipe.seed)
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    model, init, note = _start_model(recipe, init_state_dict, numerics)
    loaders = run_loaders(train, val_samples, recipe, numerics.device.type == "cuda", load)
    run = RunState(
        recipe, recipe.epochs * len(loaders.train), progress, progress_every, should_stop, started
    )
    log.info(
        "fine-tuning %s: train %s, val %s, init %s, %s", numerics.name, class_counts(train),
        class_counts(val_samples), init, recipe.to_dict(),
    )  # fmt: skip
    try:
        _train_epochs(model, loaders, numerics, run)
    finally:
        loaders.close()
    model, best = _best_model(model, run, val_samples, Path(out_dir))
    assert run.best is not None
    return TrainResult(
        model=model,
        recipe=recipe,
        init=init,
        init_note=note,
        numerics=numerics.name,
        history=run.history,
        metrics=best,
        best_epoch=best["epoch"],
        train_images=len(train),
        val_images=len(val_samples),
        skipped=[{"path": p, "reason": r} for p, r in sorted(run.skipped.items())],
        images_per_s=run.images / max(run.train_s, 1e-9),
        wall_s=time.perf_counter() - run.started,
        chart_path=Path(out_dir) / "training.png",
        grid_path=Path(out_dir) / "predictions.png",
        val_scores=run.best[2],
    )


def _start_model(
    recipe: Recipe, init_state_dict: dict[str, Any] | None, numerics: Numerics
) -> tuple[nn.Module, str, str]:
    """The recipe's starting weights on the training device: (model, init used, note)."""
    model, init, note = initial_model(recipe.init, init_state_dict)
    if note:
        log.warning("%s", note)
    model = model.to(numerics.device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, init, note


def _train_epochs(model: nn.Module, loaders: Loaders, numerics: Numerics, run: RunState) -> None:
    """AdamW and the LR schedule, then per epoch: train, recompute BatchNorm, validate."""
    recipe = run.recipe
    optimizer = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = lr_schedule(recipe, optimizer, run.steps)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler("cuda") if numerics.dtype == torch.float16 else None
    for epoch in range(1, recipe.epochs + 1):
        run.start_epoch(epoch)
        stats = train_one_epoch(
            model, guarded(loaders.train, run.check), optimizer, scheduler, numerics,
            grad_clip=recipe.grad_clip, scaler=scaler, on_step=run.step,
        )  # fmt: skip
        if loaders.bn is not None:
            used = precise_bn(model, guarded(loaders.bn, run.check), numerics)
            log.info("epoch %d: BatchNorm statistics recomputed over %d images", epoch, used)
        result = evaluate(model, guarded(loaders.val, run.check), numerics)
        run.end_epoch(stats, result, model)


def _best_model(
    model: nn.Module, run: RunState, val_samples: list[Sample], out_dir: Path
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the best epoch's weights (eval mode, CPU), draw the run's two PNGs; its metrics."""
    assert run.best is not None  # recipe.epochs >= 1
    _, weights, result, best = run.best
    model.load_state_dict(weights)
    model = model.eval().cpu()
    plots.training_chart(run.history, out_dir / "training.png")
    val_shown = [val_samples[i] for i in result.indices]
    plots.predictions_grid(
        val_shown,
        result.p_crack,
        result.labels,
        out_dir / "predictions.png",
        threshold=best["chosen_threshold"],
    )
    return model, best


def _training_set(samples: list[Sample], recipe: Recipe) -> list[Sample]:
    train = list(samples)
    if recipe.max_train_images is not None and len(train) > recipe.max_train_images:
        train = random.Random(recipe.seed).sample(train, recipe.max_train_images)
    counts = class_counts(train)
    if min(counts.values()) == 0:
        raise DatasetError(f"the training set needs images of both classes, has {counts}")
    return train

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
from torch.utils.data import DataLoader

from models import plots
from models.checkpoints import save_checkpoint
from models.classifier import (
    build_model,
    imagenet_available,
    imagenet_cache_path,
    load_imagenet_backbone,
    resolve_numerics,
)
from models.datasets import DatasetError, Loader, Sample, TrainPreset, class_counts, load_rgb
from models.evaluation import EvalResult, evaluate, metrics
from models.loop import (
    EpochStats,
    guarded,
    lr_schedule,
    make_loader,
    precise_bn,
    shutdown_workers,
    train_one_epoch,
)
from models.recipe import Recipe
from models.transforms import EvalPreset

__all__ = [
    "TrainResult",
    "TrainingCancelled",
    "fine_tune",
    "initial_model",
    "make_loader",
    "save_trained",
    "shutdown_workers",
    "train_one_epoch",
]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
HEADLINE = ("loss", "accuracy", "precision", "recall", "f1", "auc", "chosen_threshold")


class TrainingCancelled(RuntimeError):
    """should_stop returned True or the recipe's time limit passed; nothing was returned."""

    def __init__(self, reason: str, history: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.history = history


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


def initial_model(init: str, init_state_dict: dict[str, Any] | None) -> tuple[nn.Module, str, str]:
    """(model, init used, note on any fallback) for a recipe's `init`; `auto` never downloads."""
    cached = imagenet_available()
    if init == "imagenet" or (init == "auto" and cached):
        # An explicit "imagenet" may try to download; PretrainedUnavailable says how to fix it.
        return load_imagenet_backbone(download=init == "imagenet"), "imagenet", ""
    missing = f"ImageNet weights are not cached at {imagenet_cache_path()}"
    if init == "checkpoint" or (init == "auto" and init_state_dict is not None):
        if init_state_dict is None:
            raise ValueError("init 'checkpoint' needs init_state_dict (the promoted model's)")
        model = build_model()
        model.load_state_dict(init_state_dict, strict=True)
        note = "" if init == "checkpoint" else f"{missing}; started from the promoted checkpoint"
        return model, "checkpoint", note
    note = "" if init == "random" else f"{missing} and no checkpoint was given; random weights"
    return build_model(), "random", note


class _Run:
    """Counters, progress payloads, the stop check and the best epoch of one fine_tune call."""

    def __init__(
        self, recipe: Recipe, steps: int, progress: Progress | None, every: int,
        should_stop: Callable[[], bool] | None, started: float,
    ) -> None:  # fmt: skip
        self.recipe, self.steps, self.progress, self.every = recipe, steps, progress, every
        self.should_stop = should_stop
        self.started = started
        self.history: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}  # path -> reason
        self.best: tuple[tuple[float, float], dict[str, Any], EvalResult, dict[str, Any]] | None
        self.best = None
        self.done, self.lr, self.images, self.train_s = 0, recipe.lr, 0, 0.0
        self.start_epoch(1)

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.seen, self.loss_sum = epoch, 0, 0.0
        self.epoch_start = time.perf_counter()

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled("cancelled", self.history)
        limit = self.recipe.time_limit_s
        if limit is not None and time.perf_counter() - self.started > limit:
            raise TrainingCancelled(f"time limit of {limit:g} s reached", self.history)

    def step(self, loss: float, n: int, lr: float) -> None:
        self.done, self.seen, self.lr = self.done + 1, self.seen + n, lr
        self.loss_sum += loss * n
        if self.progress is not None and self.done % self.every == 0:
            self.progress(self.status("step"))

    def status(self, event: str) -> dict[str, Any]:
        now = time.perf_counter()
        return {
            "event": event,
            "epoch": self.epoch,
            "epochs": self.recipe.epochs,
            "step": self.done,
            "steps": self.steps,
            "loss": self.loss_sum / max(self.seen, 1),
            "images_per_s": self.seen / max(now - self.epoch_start, 1e-9),
            "lr": self.lr,
            "eta_s": (now - self.started) / max(self.done, 1) * (self.steps - self.done),
        }

    def end_epoch(self, stats: EpochStats, result: EvalResult, model: nn.Module) -> None:
        """Record the epoch, keep the weights if best (val AUC, then accuracy), report."""
        self.images, self.train_s = self.images + stats.images, self.train_s + stats.seconds
        self.skipped.update({b["path"]: b["reason"] for b in stats.bad})
        self.skipped.update({b.path: b.reason for b in result.bad})
        m = metrics(result.labels, result.p_crack) | {"epoch": self.epoch}
        val = {k: m[k] for k in HEADLINE}
        self.history.append(
            {
                "epoch": self.epoch,
                "train_loss": stats.loss,
                "lr": self.lr,
                "images_per_s": stats.images / max(stats.seconds, 1e-9),
                "seconds": time.perf_counter() - self.epoch_start,
                "val": val,
            }
        )
        log.info("epoch %d/%d: %s", self.epoch, self.recipe.epochs, self.history[-1])
        key = (m["auc"] if m["auc"] is not None else -1.0, m["accuracy"])
        if self.best is None or key > self.best[0]:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best = (key, weights, result, m)
        if self.progress is not None:
            self.progress(self.status("epoch") | {"train_loss": stats.loss, "val": val})


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
    `load` reads every training and validation image (see models.datasets.Loader).
    """
    started = time.perf_counter()
    train = _training_set(train_samples, recipe)
    if not val_samples:
        raise DatasetError("the validation set is empty")
    torch.manual_seed(recipe.seed)
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    model, init, note = initial_model(recipe.init, init_state_dict)
    if note:
        log.warning("%s", note)
    model = model.to(numerics.device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    pin, size, batch = numerics.device.type == "cuda", recipe.image_size, recipe.batch_size
    train_loader = make_loader(train, TrainPreset(size), batch, True, recipe, pin, load)
    val_loader = make_loader(val_samples, EvalPreset(size), 2 * batch, False, recipe, pin, load)
    bn_loader = _precise_bn_loader(train, recipe, pin, load)
    steps = recipe.epochs * len(train_loader)
    optimizer = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = lr_schedule(recipe, optimizer, steps)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler("cuda") if numerics.dtype == torch.float16 else None
    run = _Run(recipe, steps, progress, progress_every, should_stop, started)
    log.info(
        "fine-tuning %s: train %s, val %s, init %s, %s", numerics.name, class_counts(train),
        class_counts(val_samples), init, recipe.to_dict(),
    )  # fmt: skip
    try:
        for epoch in range(1, recipe.epochs + 1):
            run.start_epoch(epoch)
            stats = train_one_epoch(
                model, guarded(train_loader, run.check), optimizer, scheduler, numerics,
                grad_clip=recipe.grad_clip, scaler=scaler, on_step=run.step,
            )  # fmt: skip
            if bn_loader is not None:
                used = precise_bn(model, guarded(bn_loader, run.check), numerics)
                log.info("epoch %d: BatchNorm statistics recomputed over %d images", epoch, used)
            result = evaluate(model, guarded(val_loader, run.check), numerics)
            run.end_epoch(stats, result, model)
    finally:
        for loader in (train_loader, val_loader, bn_loader):
            if loader is not None:
                shutdown_workers(loader)
    assert run.best is not None  # recipe.epochs >= 1
    _, weights, result, best = run.best
    model.load_state_dict(weights)
    model = model.eval().cpu()
    chart, grid = Path(out_dir) / "training.png", Path(out_dir) / "predictions.png"
    plots.training_chart(run.history, chart)
    val_shown = [val_samples[i] for i in result.indices]
    plots.predictions_grid(
        val_shown, result.p_crack, result.labels, grid, threshold=best["chosen_threshold"]
    )
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
        chart_path=chart,
        grid_path=grid,
    )


def _precise_bn_loader(
    train: list[Sample], recipe: Recipe, pin: bool, load: Loader
) -> DataLoader | None:
    """Eval-transformed training images for precise_bn, or None when the recipe turns it off."""
    if not recipe.precise_bn_images:
        return None
    count = min(recipe.precise_bn_images, len(train))
    chosen = random.Random(recipe.seed + 2).sample(train, count)
    preset = EvalPreset(recipe.image_size)
    return make_loader(chosen, preset, recipe.batch_size, False, recipe, pin, load)


def _training_set(samples: list[Sample], recipe: Recipe) -> list[Sample]:
    train = list(samples)
    if recipe.max_train_images is not None and len(train) > recipe.max_train_images:
        train = random.Random(recipe.seed).sample(train, recipe.max_train_images)
    counts = class_counts(train)
    if min(counts.values()) == 0:
        raise DatasetError(f"the training set needs images of both classes, has {counts}")
    return train

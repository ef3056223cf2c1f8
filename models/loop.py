"""The training loop's parts: a run's data loaders, LR schedule, one epoch, precise BN."""

from __future__ import annotations

import logging
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from models.augment import train_preset
from models.datasets import Sample
from models.evaluation import autocast, to_input
from models.imagedata import Batch, ImageDataset, Loader, collate_skip_bad, load_rgb
from models.numerics import Numerics
from models.recipe import Recipe
from models.transforms import EvalPreset

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    """What one pass over the training batches did."""

    loss: float
    images: int
    seconds: float
    bad: list[dict[str, str]] = field(default_factory=list)


def make_loader(
    samples: list[Sample],
    transform: Any,
    batch_size: int,
    train: bool,
    recipe: Recipe,
    pin: bool,
    load: Loader = load_rgb,
) -> DataLoader:
    """A DataLoader over ImageDataset that drops unreadable images (see collate_skip_bad).

    `load` reads each sample (see models.imagedata.Loader). Inside a daemonic process
    (e.g. a prefork pool child) worker processes are not allowed, so decoding then
    happens in this process.
    """
    workers = recipe.num_workers
    if workers and multiprocessing.current_process().daemon:
        log.warning("daemonic process: DataLoader workers disabled, decoding in-process")
        workers = 0
    return DataLoader(
        ImageDataset(samples, transform, load),
        batch_size=batch_size,
        shuffle=train,
        # A tiny last batch gives noisy BatchNorm statistics; skip it when there is a choice.
        drop_last=train and len(samples) > batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin,
        collate_fn=collate_skip_bad,
        generator=torch.Generator().manual_seed(recipe.seed + (0 if train else 1)),
    )


@dataclass
class Loaders:
    """A run's DataLoaders: training, validation, and precise-BN (None when turned off)."""

    train: DataLoader
    val: DataLoader
    bn: DataLoader | None

    def close(self) -> None:
        for loader in (self.train, self.val, self.bn):
            if loader is not None:
                shutdown_workers(loader)


def run_loaders(
    train: list[Sample], val: list[Sample], recipe: Recipe, pin: bool, load: Loader
) -> Loaders:
    """Training batches augmented per recipe.augment, validation batches twice as large, and
    precise-BN batches.

    Precise BN sees a seeded sample of training images with the validation transform.
    """
    size, batch = recipe.image_size, recipe.batch_size
    augmented = train_preset(recipe.augment, size)
    train_loader = make_loader(train, augmented, batch, True, recipe, pin, load)
    val_loader = make_loader(val, EvalPreset(size), 2 * batch, False, recipe, pin, load)
    bn_loader = None
    if recipe.precise_bn_images:
        count = min(recipe.precise_bn_images, len(train))
        chosen = random.Random(recipe.seed + 2).sample(train, count)
        bn_loader = make_loader(chosen, EvalPreset(size), batch, False, recipe, pin, load)
    return Loaders(train_loader, val_loader, bn_loader)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    numerics: Numerics,
    *,
    grad_clip: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[float, int, float], None] | None = None,
) -> EpochStats:
    """One pass over `batches`; on_step(loss, images, lr) runs after every optimiser step."""
    model.train()
    total, images = 0.0, 0
    bad: list[dict[str, str]] = []
    start = time.perf_counter()
    for batch in batches:
        bad.extend({"path": b.path, "reason": b.reason} for b in batch.bad)
        n = len(batch.labels)
        if not n:
            continue
        x = to_input(batch.images, numerics)
        y = batch.labels.to(numerics.device, non_blocking=True)
        with autocast(numerics):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        scheduler.step()
        value = float(loss.detach())
        total += value * n
        images += n
        if on_step is not None:
            on_step(value, n, lr)
    return EpochStats(total / max(images, 1), images, time.perf_counter() - start, bad)


def precise_bn(model: nn.Module, batches: Iterable[Batch], numerics: Numerics) -> int:
    """Recompute every BatchNorm's running mean/var as the plain average over `batches`.

    Running averages (momentum 0.1) trail the weights; after a short run from random init
    they describe a model many steps old, which skews eval-mode confidences (the old
    symptom here: AUC 0.999 but accuracy 0.94 at threshold 0.5). Precise BN (Wu & Johnson,
    "Rethinking Batch in BatchNorm", 2021) fixes it with one forward pass, no gradients.
    Returns the images used; with none, the previous statistics are kept.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches seen
    was_training, images = model.training, 0
    model.train()
    try:
        with torch.no_grad(), autocast(numerics):
            for batch in batches:
                if len(batch.labels):
                    model(to_input(batch.images, numerics))
                    images += len(batch.labels)
    finally:
        model.train(was_training)
        for m, (momentum, mean, var) in zip(layers, saved, strict=True):
            m.momentum = momentum
            if not images:
                m.running_mean.copy_(mean)  # type: ignore[union-attr]
                m.running_var.copy_(var)  # type: ignore[union-attr]
    return images


def lr_schedule(recipe: Recipe, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """Cosine decay from recipe.lr to 0 over all `steps`, or a constant rate."""
    if recipe.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps))
    )


def guarded(batches: Iterable[Batch], check: Callable[[], None]) -> Iterator[Batch]:
    for batch in batches:
        check()
        yield batch


def shutdown_workers(loader: DataLoader) -> None:
    # Persistent workers outlive an exception (the traceback keeps the iterator alive),
    # so stop them explicitly when training ends for any reason.
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()

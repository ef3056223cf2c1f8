"""One fine-tuning call's bookkeeping: progress payloads, the stop check, history, best epoch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from torch import nn

from models.evaluation import EvalResult, metrics
from models.loop import EpochStats
from models.recipe import Recipe

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
HEADLINE = ("loss", "accuracy", "precision", "recall", "f1", "auc", "chosen_threshold")


class TrainingCancelled(RuntimeError):
    """should_stop returned True or the recipe's time limit passed; nothing was returned."""

    def __init__(self, reason: str, history: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.history = history


class RunState:
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

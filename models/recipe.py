"""Fine-tuning hyperparameters: one frozen dataclass, stored with the run and in the checkpoint."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

INITS = ("auto", "imagenet", "checkpoint", "random")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OPTIMIZERS = ("adamw",)
SCHEDULES = ("cosine", "constant")
AUGMENTS = ("card", "photometric", "robust")  # models.augment.train_preset builds each


@dataclass(frozen=True)
class Recipe:
    """How a model is fine-tuned. The defaults are crackq's recipe; CARD is the reference card.

    init: `auto` = ImageNet weights when cached locally, else the promoted checkpoint when
    one is given, else random. precision: `auto` = bf16 autocast on CUDA and bf16-capable
    CPUs, fp16 on GPUs without bf16, fp32 otherwise. precise_bn_images: after each
    epoch, BatchNorm statistics are recomputed over this many training images (0: keep
    the running averages); not part of the card, it fixes short runs (see loop.precise_bn).
    augment: the training transform (models.augment): `card` = the card's flips, turns and
    mild brightness/contrast jitter (TrainPreset), the default: the suite chose it (README
    "Augmentation"); `photometric` adds strong contrast, white balance and grey-scale;
    `robust` adds crop-and-zoom, colour, white balance, grey-scale, blur, noise and JPEG
    drawn past models.shifts' strengths.
    shift_check_photos: after training, this many validation photos per class are scored
    under each shift of models.shifts (models.shiftcheck; 0: no check); reporting only,
    it changes no weight.
    """

    batch_size: int = 32
    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    init: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    num_workers: int = 2
    image_size: int = 224
    val_fraction: float = 0.2
    max_train_images: int | None = None
    time_limit_s: float | None = None
    precise_bn_images: int = 1024
    augment: str = "card"
    shift_check_photos: int = 100

    def __post_init__(self) -> None:
        _choice("init", self.init, INITS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("augment", self.augment, AUGMENTS)
        for name in ("batch_size", "epochs", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe {name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "precise_bn_images", "shift_check_photos"):
            if getattr(self, name) < 0:
                raise ValueError(f"recipe {name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"recipe lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"recipe weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"recipe val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("grad_clip", "time_limit_s", "max_train_images"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"recipe {name} must be positive or None, got {value}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of to_dict; missing keys take defaults, unknown keys are an error.

        Values are coerced to the field's type so JSON round-trips (e.g. `1` for a float
        field) give an equal Recipe.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown recipe field(s) {unknown}; known: {sorted(fields)}")
        return cls(**{k: _coerce(k, fields[k].type, v) for k, v in data.items()})


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"recipe {name} must be one of {allowed}, got {value!r}")


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    # Field types are strings under `from __future__ import annotations`.
    kind = str(annotation).split(" | ")[0]
    if value is None:
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"recipe {name} must be true/false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError(f"recipe {name} must be an integer, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(f"recipe {name} must be a number, got {value!r}")
        return float(value)
    return str(value)


# The reference card: pretrained where available, batch 32, 5 epochs, lr 1e-3, AdamW,
# cosine, weight decay 0, no clipping, its flips/turns/jitter and no precise BatchNorm.
# Fields the card does not name (numerics, loader workers, the split, the report's
# shift check) keep crackq's defaults: they change speed or reporting, not the recipe.
CARD = Recipe(precise_bn_images=0, augment="card")
RECIPES = {"default": Recipe(), "card": CARD}  # `crackq finetune --recipe NAME`

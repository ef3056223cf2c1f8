"""The crack network: ResNet50 with a 2-class head, pinned ImageNet weights, starting weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

CLASSES = ("no_crack", "crack")  # output index 1 is the crack probability
CRACK_INDEX = 1
ARCHITECTURE = "resnet50"
# Pin named weights: DEFAULT changes meaning across torchvision releases.
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights are neither cached locally nor downloadable."""


def build_model(num_classes: int = len(CLASSES)) -> nn.Module:
    """ResNet50 with a fresh `num_classes` head and random weights."""
    return resnet50(weights=None, num_classes=num_classes)


def imagenet_cache_path() -> Path:
    """Where torchvision caches the pinned ImageNet weights ($TORCH_HOME/hub/checkpoints)."""
    hub = Path(torch.hub.get_dir())
    return hub / "checkpoints" / os.path.basename(IMAGENET_WEIGHTS.url)


def imagenet_available() -> bool:
    """True when the pinned ImageNet weights are already in the local torch cache."""
    return imagenet_cache_path().is_file()


def load_imagenet_backbone(num_classes: int = len(CLASSES), download: bool = True) -> nn.Module:
    """ResNet50 with ImageNet weights (IMAGENET1K_V2) and a fresh `num_classes` head.

    Uses the torchvision weights API, which reads $TORCH_HOME's cache first. Offline with
    an empty cache this raises PretrainedUnavailable telling how to provide the file.
    """
    if not download and not imagenet_available():
        raise PretrainedUnavailable(_missing_message())
    try:
        model = resnet50(weights=IMAGENET_WEIGHTS)
    except Exception as exc:  # urllib/ssl/socket errors differ by platform
        raise PretrainedUnavailable(f"{_missing_message()} ({type(exc).__name__}: {exc})") from exc
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


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


def _missing_message() -> str:
    return (
        f"ImageNet weights {IMAGENET_WEIGHTS} are not cached at {imagenet_cache_path()} and "
        f"could not be downloaded from {IMAGENET_WEIGHTS.url}; copy that file there "
        "(or set TORCH_HOME to a folder holding hub/checkpoints/), or run without them"
    )

"""ResNet50s with a known answer: "crack" exactly when a photo is strongly red (or green).

Shadow tests need two real checkpoints that disagree on chosen photos. Two such models
give flips in both directions: a red photo is a crack to the red model only, a green one
to the green model only, yellow to both and grey to neither. The weights are set by hand:
conv1 passes the channel's centre pixel (normalised) into feature 0 or 1, less 1 by its
batch norm; every residual branch is zero and every downsample passes features 0 and 1
on, so the pooled feature is the photo's mean of relu(channel - 1); the head turns it
into a crack logit of 4 x feature - 2 (red: p 0.95, grey: p 0.12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet

from models.checkpoints import save_checkpoint
from models.network import CRACK_INDEX, build_model

CHANNELS = {"red": 0, "green": 1}
COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "yellow": (255, 255, 0),
    "grey": (128, 128, 128),
}


def colour_model(colour: str) -> nn.Module:
    """A ResNet50 that calls a photo a crack exactly when `colour` (red, green) is strong."""
    model = build_model()
    assert isinstance(model, ResNet)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:  # every convolution and the head: set below where not zero
                p.zero_()
        for i in CHANNELS.values():  # feature i <- colour channel i
            model.conv1.weight[i, i, 3, 3] = 1.0  # the centre tap of the 7x7 kernel
            model.bn1.bias[i] = -1.0
        for module in model.modules():
            downsample = getattr(module, "downsample", None)
            if downsample is not None:
                for i in CHANNELS.values():
                    downsample[0].weight[i, i, 0, 0] = 1.0
        model.fc.bias.zero_()
        model.fc.weight[CRACK_INDEX, CHANNELS[colour]] = 4.0
        model.fc.bias[CRACK_INDEX] = -2.0
    return model.eval()


def colour_checkpoint(folder: Path, colour: str, version: str, image_size: int = 64) -> str:
    """Save the `colour` model as `folder/version.pt`; returns its sha256."""
    path = Path(folder) / f"{version}.pt"
    return save_checkpoint(
        path, colour_model(colour), version=version, recipe={"image_size": image_size}
    )


def register_colour_models(
    sessions: Any,
    folder: Path,
    models: dict[str, str],
    promote: str | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Save each {version: colour} model in `folder`, register it, promote `promote`."""
    from db import registry

    with sessions() as s, s.begin():
        for version, colour in models.items():
            sha = colour_checkpoint(folder, colour, version)
            registry.register(
                s, version=version, checkpoint_uri=str(Path(folder) / f"{version}.pt"),
                sha256=sha, architecture="resnet50", metrics=metrics or {},
            )  # fmt: skip
        if promote is not None:
            registry.promote(s, promote, by="test")

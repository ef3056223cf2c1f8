"""Checkpoints: state_dict plus metadata, written atomically, verified before loading."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.network import ARCHITECTURE, CLASSES, build_model
from models.transforms import IMAGENET_MEAN, IMAGENET_STD

FORMAT = "crackq-checkpoint/1"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class CheckpointError(ValueError):
    """A checkpoint that is missing, tampered with, or not a crackq checkpoint."""


@dataclass(frozen=True)
class ServingConfig:
    """What serving a checkpoint's model takes, stored inside it (timm's `pretrained_cfg`)."""

    image_size: int = 224
    threshold: float = 0.5  # the operating point chosen on the run's validation split
    patch_size: int = 0  # side of the training photos before resizing; 0 = image_size
    classes: tuple[str, ...] = CLASSES
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def serving_config(payload: dict[str, Any]) -> ServingConfig:
    """The one place a checkpoint's serving config is read (older files: recipe and threshold)."""
    stored = payload.get("serving")
    if stored is None:
        stored = {
            "image_size": (payload.get("recipe") or {}).get("image_size", 224),
            "threshold": payload.get("threshold") or 0.5,
            "classes": payload.get("classes", CLASSES),
            "patch_size": payload.get("patch_size") or 0,
        }
    config = ServingConfig(
        image_size=int(stored["image_size"]),
        threshold=float(stored["threshold"]),
        classes=tuple(stored["classes"]),
        mean=tuple(stored.get("mean", IMAGENET_MEAN)),
        std=tuple(stored.get("std", IMAGENET_STD)),
        patch_size=int(stored.get("patch_size") or 0),
    )
    if (config.mean, config.std) != (IMAGENET_MEAN, IMAGENET_STD):
        # serving normalises with ImageNet's statistics (models.transforms) and nothing else
        raise CheckpointError(f"unsupported normalisation {config.mean} / {config.std}")
    return config


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: Path, model: nn.Module, **metadata: Any) -> str:
    """Write model weights and JSON-like metadata atomically; returns the file's sha256.

    The file appears under its final name only once fully written and fsynced, and a
    `<name>.sha256` sidecar lets a checkpoint given by path be verified without the registry.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "architecture": ARCHITECTURE,
        "classes": list(CLASSES),
        "state_dict": cpu_state_dict(model),
        **metadata,
    }
    payload.setdefault("serving", serving_config(payload).to_dict())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    digest = sha256_file(path)
    _write_atomic(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as contiguous CPU copies, whatever its device and memory format."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def expected_sha256(path: Path) -> str | None:
    """The checksum recorded in a checkpoint's `.sha256` sidecar, if there is one.

    A sidecar that is empty or does not start with a sha256 hex digest is an error, not
    a missing checksum: someone meant to pin this file.
    """
    sidecar = Path(path).with_name(Path(path).name + ".sha256")
    if not sidecar.is_file():
        return None
    try:
        fields = sidecar.read_text().split()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checksum file {sidecar} cannot be read: {exc}") from exc
    digest = fields[0].lower() if fields else ""
    if not SHA256_HEX.fullmatch(digest):
        found = repr(digest[:80]) if digest else "nothing"
        raise CheckpointError(
            f"checksum file {sidecar} holds {found}, not a sha256 hex digest "
            f"(expected `<64 hex digits>  {Path(path).name}`)"
        )
    return digest


def load_checkpoint(path: Path, sha256: str | None) -> dict[str, Any]:
    """Verify the file's sha256 (refusing any mismatch), then load it with weights_only=True.

    The file is read once: the bytes hashed are the bytes loaded, so a file replaced
    between the check and the load cannot slip through.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if sha256 is None:
        raise CheckpointError(f"checkpoint {path} has no known sha256; refusing to load it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise CheckpointError(
            f"checkpoint {path} has sha256 {actual}, expected {sha256}: "
            "the file was changed or corrupted; refusing to load it"
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a crackq checkpoint ({FORMAT})")
    if payload.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{path} holds {payload.get('architecture')!r}, not {ARCHITECTURE}")
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> nn.Module:
    """A ResNet50 with the checkpoint's weights loaded (strict)."""
    model = build_model(num_classes=len(serving_config(payload).classes))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model

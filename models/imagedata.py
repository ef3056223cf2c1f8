"""Training images: load_rgb, the skip-bad ImageDataset and the Batch its collate makes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from models.datasets import Sample
from models.formats import PHOTO_FORMAT_NAMES
from models.transforms import INPUT_SIZE

log = logging.getLogger(__name__)

# (ref, size) -> upright RGB image; raises on anything unreadable. Must pickle (a
# module-level function, functools.partial or frozen dataclass): DataLoader workers
# receive it, by fork or by spawn.
Loader = Callable[[str, int], Image.Image]
# load_rgb's own limits. Photo formats only: every other Pillow plugin is attack surface.
Image.init()  # registers every plugin, so the check below sees them all
PHOTO_FORMATS = tuple(f for f in PHOTO_FORMAT_NAMES if f in Image.OPEN)
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class BadImage:
    """Marker an ImageDataset returns instead of a sample it could not decode."""

    index: int
    path: str
    reason: str


class Batch(NamedTuple):
    images: torch.Tensor  # uint8 (N, H, W, 3); normalise on the device
    labels: torch.Tensor  # int64 (N,)
    indices: torch.Tensor  # int64 (N,) positions in the dataset's sample list
    bad: list[BadImage]  # samples dropped from this batch


def load_rgb(path: str, size: int, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a local image file upright (EXIF orientation applied) as RGB.

    The default Loader, for plain use: photo formats only, at most `max_pixels`, checked
    from the header before any pixel is decoded (Pillow's own bomb limit may be off in a
    worker process). Workers train through their own reader and decoder instead.
    """
    with Image.open(path, formats=PHOTO_FORMATS) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(f"{width}x{height} is over {max_pixels} pixels")
        # JPEG DCT scaling: decode big photos at >= size instead of full resolution.
        img.draft("RGB", (size, size))
        return ImageOps.exif_transpose(img).convert("RGB")


class ImageDataset(Dataset):
    """(path, label) samples -> (uint8 HWC array, label, index), or a BadImage marker.

    `load` reads and decodes one reference; what it refuses is a bad image like any other.
    A file that cannot be decoded does not stop training: the marker travels to
    collate_skip_bad, which drops it and lists it in Batch.bad, so the training loop can
    count skipped images even when decoding runs in worker processes.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], np.ndarray],
        load: Loader = load_rgb,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.load = load
        self.size = getattr(transform, "size", INPUT_SIZE)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int] | BadImage:
        path, label = self.samples[index]
        try:
            return self.transform(self.load(path, self.size)), label, index
        except Exception as exc:  # PIL raises many types for corrupt or truncated files
            log.warning("skipping unreadable image %s: %s", path, exc)
            return BadImage(index, path, f"{type(exc).__name__}: {exc}")


def collate_skip_bad(items: list[tuple[np.ndarray, int, int] | BadImage]) -> Batch:
    """Stack good samples into a Batch; BadImage markers go to Batch.bad."""
    good = [it for it in items if not isinstance(it, BadImage)]
    bad = [it for it in items if isinstance(it, BadImage)]
    if good:
        images = torch.from_numpy(np.stack([g[0] for g in good]))
    else:
        images = torch.empty((0, 0, 0, 3), dtype=torch.uint8)
    labels = torch.tensor([g[1] for g in good], dtype=torch.int64)
    indices = torch.tensor([g[2] for g in good], dtype=torch.int64)
    return Batch(images, labels, indices, bad)

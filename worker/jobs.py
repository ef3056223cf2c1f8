"""What one inspection job carries: its items, their loaded form, and the pipeline's config."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.serving import Classifier
from worker.errors import ImageError
from worker.sources import SourceLimits


@dataclass(frozen=True)
class Item:
    """One image reference to classify, as carried by a message."""

    request_id: str
    image_ref: str
    batch_id: str | None = None
    submitted_at: dt.datetime | None = None
    mode: str = "auto"  # patch (classify whole), map (tile by tile) or auto (by size)
    # what the photo shows (messages.AssetFields), stored on its row as given
    asset_id: str | None = None
    inspection_id: str | None = None
    captured_at: dt.datetime | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    # a re-score (crackq rescore): the version to answer with; None for a live photo
    rescore_version: str | None = None


@dataclass(frozen=True)
class Loaded:
    """An item after reading and decoding: pixels, bytes to map, or the reason it failed."""

    item: Item
    pixels: np.ndarray | None
    error: ImageError | None
    decode_ms: float
    data: bytes | None = None  # a photo to map: its bytes, decoded by worker.mapping


@dataclass(frozen=True)
class MapPolicy:
    """When a photo is mapped instead of classified whole, and how (worker.mapping)."""

    min_side_factor: float = 2.0
    tile: int = 0  # tile side in photo pixels; 0 = the model's training patch
    overlap: float = 0.0
    min_region_tiles: int = 2
    time_budget_s: float = 300.0
    batch: int = 32  # tiles per forward request
    engine: str = "tiles"  # or "dense": fully convolutional blocks (models.dense)
    dense_block: int = 448  # side of a dense block in network pixels

    def tile_for(self, classifier: Classifier) -> int:
        return self.tile or classifier.patch_size

    def wants_map(self, mode: str, size: tuple[int, int], tile: int) -> bool:
        """Map in `map` mode, never in `patch` mode; in `auto` when a side is far above a tile."""
        if mode != "auto":
            return mode == "map"
        return max(size) > self.min_side_factor * tile


@dataclass(frozen=True)
class ReviewPolicy:
    """Which stored photos enter the review queue (db.reviewrules.enter; README "Review queue")."""

    band: float = 0.15  # crack probability within 0.5 +- band: uncertain / borderline map
    sample_rate: float = 0.01  # confident photos drawn for review
    sample_per_hour: int = 20  # at most this many drawn photos enter in any hour


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline takes from the settings: where and how it may read, who it is."""

    limits: SourceLimits
    max_pixels: int
    formats: tuple[str, ...]
    hostname: str  # recorded on every row: which worker classified it
    maps: MapPolicy = MapPolicy()
    review: ReviewPolicy | None = None  # None: no photo enters the review queue


@dataclass(frozen=True)
class Classified:
    """What `classify` did with a batch: the rows it wrote, and the photos left to map."""

    rows: list[dict[str, Any]]
    to_map: list[Loaded]
    classifier: Classifier  # the model every item of the batch is answered by

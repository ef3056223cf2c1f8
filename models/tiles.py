"""Crack maps: a tile grid over a big photo, and per-tile probabilities -> regions and a verdict."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from models.threshold import BELOW_HALF, at_half
from models.transforms import EvalPreset

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in photo pixels, x1/y1 exclusive


@dataclass(frozen=True)
class TileGrid:
    """Square tiles of `tile` px every `stride` px; the last row and column end at the border.

    Tile (r, c) has its top-left corner at (c*stride, r*stride), clamped so the tile stays
    inside the photo: no pixel is left unseen, and edge tiles overlap their neighbours more.
    """

    width: int
    height: int
    tile: int
    stride: int

    @property
    def cols(self) -> int:
        return 1 + math.ceil(max(0, self.width - self.tile) / self.stride)

    @property
    def rows(self) -> int:
        return 1 + math.ceil(max(0, self.height - self.tile) / self.stride)

    def __len__(self) -> int:
        return self.rows * self.cols

    def xs(self) -> np.ndarray:
        """Left edge of each column's tiles."""
        return np.minimum(np.arange(self.cols) * self.stride, self.width - self.tile)

    def ys(self) -> np.ndarray:
        """Top edge of each row's tiles."""
        return np.minimum(np.arange(self.rows) * self.stride, self.height - self.tile)

    def box(self, r: int, c: int) -> Box:
        x, y = int(self.xs()[c]), int(self.ys()[r])
        return x, y, x + self.tile, y + self.tile

    def boxes(self) -> Iterator[Box]:
        """Every tile's box, row by row (the order of probabilities)."""
        xs, ys = self.xs().tolist(), self.ys().tolist()
        for y in ys:
            for x in xs:
                yield x, y, x + self.tile, y + self.tile


def tile_grid(width: int, height: int, tile: int, overlap: float) -> TileGrid:
    """The grid for a `width` x `height` photo; `overlap` is the fraction tiles share (0 <= o < 1).

    A photo narrower than `tile` on one side gets square tiles of its shorter side.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    side = max(1, min(tile, width, height))
    stride = max(1, round(side * (1.0 - overlap)))
    return TileGrid(width, height, side, stride)


def tile_batches(image: Image.Image, grid: TileGrid, size: int, batch: int) -> Iterator[np.ndarray]:
    """uint8 (n, size, size, 3) arrays of consecutive tiles (row-major), `batch` at a time.

    Each tile is cropped from the full-size photo and prepared exactly as a training patch
    was (models.transforms.EvalPreset), so a tile looks to the model like what it learned.
    Only one batch of tiles exists at a time: memory stays bounded whatever the photo.
    """
    preset = EvalPreset(size)
    chunk: list[np.ndarray] = []
    for box in grid.boxes():
        chunk.append(preset(image.crop(box)))
        if len(chunk) == batch:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


@dataclass(frozen=True)
class Region:
    """Connected crack tiles: their bounding box in photo pixels, count and strongest tile."""

    box: Box
    tiles: int
    max_probability: float


@dataclass(frozen=True)
class CrackMap:
    """Per-tile crack probabilities of one photo (crack exactly when >= 0.5) and what they say."""

    grid: TileGrid
    probabilities: np.ndarray  # float32 (rows, cols)
    regions: tuple[Region, ...]
    crack_tiles: int
    crack_area_fraction: float  # of the photo's pixels, covered by crack tiles

    def counted(self, min_region_tiles: int) -> tuple[Region, ...]:
        """The regions of at least `min_region_tiles` tiles: those that make the photo a crack."""
        return tuple(r for r in self.regions if r.tiles >= min_region_tiles)

    def crack_probability(self, min_region_tiles: int) -> float:
        """The photo's crack probability: its strongest region of >= `min_region_tiles` tiles.

        Without such a region the photo is no crack, and its probability is the strongest
        tile's, kept just under 0.5 so the stored row still reads "crack iff >= 0.5".
        """
        counted = self.counted(min_region_tiles)
        if counted:
            return max(r.max_probability for r in counted)
        return min(float(self.probabilities.max()), BELOW_HALF)


def crack_map(grid: TileGrid, probabilities: np.ndarray) -> CrackMap:
    """The map of `probabilities` (one per tile, row-major, 0.5 the decision line)."""
    probs = np.asarray(probabilities, dtype=np.float32).reshape(grid.rows, grid.cols)
    crack = probs >= 0.5
    labels, _ = ndimage.label(crack, structure=np.ones((3, 3), dtype=bool))
    xs, ys, t = grid.xs(), grid.ys(), grid.tile
    regions = []
    for index, (rs, cs) in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels[rs, cs] == index
        rows, cols = np.nonzero(inside)
        rows, cols = rows + rs.start, cols + cs.start
        x0, y0 = int(xs[cols].min()), int(ys[rows].min())
        box = (x0, y0, int(xs[cols].max()) + t, int(ys[rows].max()) + t)
        regions.append(Region(box, int(inside.sum()), float(probs[rows, cols].max())))
    regions.sort(key=lambda r: (-r.max_probability, -r.tiles))
    return CrackMap(grid, probs, tuple(regions), int(crack.sum()), _area(grid, crack))


def _area(grid: TileGrid, crack: np.ndarray) -> float:
    """Fraction of the photo covered by the union of crack tiles (exact, on the tiles' edges)."""
    if not crack.any():
        return 0.0
    xs, ys, t = grid.xs(), grid.ys(), grid.tile
    ex, ey = np.unique(np.concatenate([xs, xs + t])), np.unique(np.concatenate([ys, ys + t]))
    cover = np.zeros((len(ey) - 1, len(ex) - 1), dtype=bool)
    x0, x1 = np.searchsorted(ex, xs), np.searchsorted(ex, xs + t)
    y0, y1 = np.searchsorted(ey, ys), np.searchsorted(ey, ys + t)
    for r, c in zip(*np.nonzero(crack), strict=True):
        cover[y0[r] : y1[r], x0[c] : x1[c]] = True
    area = (np.diff(ey)[:, None] * np.diff(ex)[None, :] * cover).sum()
    return float(area) / float(grid.width * grid.height)


def map_image(
    image: Image.Image,
    grid: TileGrid,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    size: int,
    batch: int,
    threshold: float,
) -> CrackMap:
    """The crack map of `image` over `grid`: tiles `batch` at a time through `predict`.

    `predict` takes uint8 (n, size, size, 3) tiles and returns their raw crack
    probabilities (n,); they are moved to the 0.5 operating point with `threshold`.
    """
    raw = [
        np.asarray(predict(chunk), dtype=np.float64)
        for chunk in tile_batches(image, grid, size, batch)
    ]
    return crack_map(grid, at_half(np.concatenate(raw), threshold))

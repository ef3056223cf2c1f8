"""Big test photos as mosaics of real held-out ozgenel patches, with per-patch crack truth."""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.procs import ROOT
from models.datasets import from_manifest, grouped_split
from models.tiles import TileGrid

DEFAULT_DATA = Path(os.environ.get("CRACKQ_TEST_DATA", ROOT.parent / "shared" / "data" / "ozgenel"))
PATCH = 227  # the ozgenel patch side
NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class Mosaic:
    """A photo of `truth.shape` patches of `patch` px whose grid starts at `offset` (x, y)."""

    image: Image.Image
    truth: np.ndarray  # bool (rows, cols), True = crack patch
    patch: int
    offset: tuple[int, int]  # (x, y) of the patch grid's origin


def held_out_patches(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """(crack, clean) patches of the validation side of the training split: never trained on.

    The split is the one training uses, `grouped_split(..., val_fraction=0.2, seed=0)` of
    `data_dir/manifest.csv`, so whole source photos stay on one side.
    """
    crack, clean = _held_out(Path(data_dir).resolve())
    return list(crack), list(clean)


@functools.lru_cache(maxsize=4)
def _held_out(data_dir: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    val = grouped_split(from_manifest(data_dir / "manifest.csv"), val_fraction=0.2, seed=0).val
    crack = tuple(Path(p) for p, label in val if label == 1)
    clean = tuple(Path(p) for p, label in val if label == 0)
    return crack, clean


def build_mosaic(
    crack: Sequence[Path],
    clean: Sequence[Path],
    rows: int,
    cols: int,
    rng: random.Random,
    crack_cells: int = 0,
    patch: int = PATCH,
    offset: tuple[int, int] = (0, 0),
) -> Mosaic:
    """A (cols*patch + ox) x (rows*patch + oy) photo: clean patches, `crack_cells` crack ones.

    The crack cells are a random walk (see `crack_walk`), so they form one 4-connected
    chain as a real crack would. The top and left margin strips an offset leaves are
    filled with crops of further clean patches. Patches are drawn without repeats while
    the lists last; the same `rng` state gives the same mosaic.
    """
    if rows < 1 or cols < 1 or patch < 1:
        raise ValueError(f"need rows, cols, patch >= 1, got {rows}, {cols}, {patch}")
    if not 0 <= crack_cells <= rows * cols:
        raise ValueError(f"crack_cells must be in [0, {rows * cols}], got {crack_cells}")
    if crack_cells and not crack:
        raise ValueError("crack cells asked for, but no crack patches given")
    if not clean:
        raise ValueError("no clean patches given")
    ox, oy = offset
    if ox < 0 or oy < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    truth = np.zeros((rows, cols), dtype=bool)
    for r, c in crack_walk(rows, cols, crack_cells, rng):
        truth[r, c] = True
    # The margin is covered by whole cells to the left of and above the grid, cut by the border.
    mr, mc = math.ceil(oy / patch), math.ceil(ox / patch)
    margin = [(r, c) for r in range(-mr, rows) for c in range(-mc, cols) if r < 0 or c < 0]
    cracks = iter(_draw(crack, int(truth.sum()), rng))
    cleans = iter(_draw(clean, rows * cols - int(truth.sum()) + len(margin), rng))
    image = Image.new("RGB", (cols * patch + ox, rows * patch + oy))
    cells = margin + [(r, c) for r in range(rows) for c in range(cols)]
    for r, c in cells:
        source = next(cracks) if r >= 0 and c >= 0 and truth[r, c] else next(cleans)
        image.paste(_patch(source, patch), (ox + c * patch, oy + r * patch))
    return Mosaic(image, truth, patch, (ox, oy))


def crack_walk(rows: int, cols: int, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """`n` distinct cells, each a 4-neighbour of an earlier one, from a random start.

    Each step goes to a random unvisited neighbour of the walk's head; when the head has
    none, the walk backs up along itself to the latest cell that has one. So it never
    revisits a cell, and the cells stay 4-connected whatever `n` (up to rows*cols).
    """
    if n <= 0:
        return []
    path = [(rng.randrange(rows), rng.randrange(cols))]
    seen = set(path)
    trail = list(path)  # the head is trail[-1]; popped while backing up
    while len(path) < n:
        r, c = trail[-1]
        free = [
            (r + dr, c + dc)
            for dr, dc in NEIGHBOURS
            if 0 <= r + dr < rows and 0 <= c + dc < cols and (r + dr, c + dc) not in seen
        ]
        if not free:
            trail.pop()
            continue
        step = rng.choice(free)
        path.append(step)
        seen.add(step)
        trail.append(step)
    return path


def cell_scores(
    truth_shape: tuple[int, int],
    patch: int,
    offset: tuple[int, int],
    grid: TileGrid,
    probabilities: np.ndarray,
) -> np.ndarray:
    """float (rows, cols): each mosaic cell gets the probability of one tile of `grid`.

    The rule: the tile whose centre is nearest the cell's centre (Euclidean). Tile centres
    form a row x column lattice, so that is the nearest tile column by x and the nearest
    tile row by y; a tie goes to the tile further up / left. With tiles the size of a
    patch and no overlap on an aligned mosaic, that tile is exactly the cell.
    """
    rows, cols = truth_shape
    ox, oy = offset
    probs = np.asarray(probabilities, dtype=np.float64).reshape(grid.rows, grid.cols)
    tile_x = grid.xs() + grid.tile / 2
    tile_y = grid.ys() + grid.tile / 2
    cell_x = ox + (np.arange(cols) + 0.5) * patch
    cell_y = oy + (np.arange(rows) + 0.5) * patch
    nearest_col = np.abs(cell_x[:, None] - tile_x[None, :]).argmin(axis=1)
    nearest_row = np.abs(cell_y[:, None] - tile_y[None, :]).argmin(axis=1)
    return probs[np.ix_(nearest_row, nearest_col)]


def save_mosaic(m: Mosaic, path: Path | str) -> Path:
    """Write the mosaic's photo as a JPEG of quality 95; returns the path."""
    path = Path(path)
    m.image.save(path, "JPEG", quality=95)
    return path


def _draw(paths: Sequence[Path], k: int, rng: random.Random) -> list[Path]:
    """`k` of `paths`, distinct while there are enough of them."""
    if k <= len(paths):
        return rng.sample(list(paths), k)
    return rng.choices(list(paths), k=k)


def _patch(path: Path, patch: int) -> Image.Image:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if rgb.size != (patch, patch):
        rgb = rgb.resize((patch, patch), Image.Resampling.BILINEAR)
    return rgb

"""Big test photos as mosaics of real held-out ozgenel patches, with per-patch crack truth."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from harness.procs import ROOT
from models.datasets import from_manifest, grouped_split
from models.mosaics import PATCH, Mosaic, build_mosaic, crack_walk, save_mosaic
from models.tiles import TileGrid

__all__ = [
    "PATCH",
    "Mosaic",
    "build_mosaic",
    "cell_scores",
    "crack_walk",
    "held_out_patches",
    "save_mosaic",
]

DEFAULT_DATA = Path(os.environ.get("CRACKQ_TEST_DATA", ROOT.parent / "shared" / "data" / "ozgenel"))


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

"""Big photos as mosaics of patches with a known layout: crack patches laid as a random walk.

Used to check crack maps where the answer is known (benchmarks, tests, the demo).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PATCH = 227  # the ozgenel patch side
NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class Mosaic:
    """A photo of `truth.shape` patches of `patch` px whose grid starts at `offset` (x, y)."""

    image: Image.Image
    truth: np.ndarray  # bool (rows, cols), True = crack patch
    patch: int
    offset: tuple[int, int]  # (x, y) of the patch grid's origin


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

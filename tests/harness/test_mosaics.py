"""Mosaic photos: geometry, the crack walk, clean mosaics, determinism, cell scoring."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.mosaics import (
    Mosaic,
    build_mosaic,
    cell_scores,
    crack_walk,
    held_out_patches,
    save_mosaic,
)
from models.datasets import from_manifest, grouped_split
from models.tiles import tile_grid
from tests.conftest import real_data_or_skip

CRACK_RED = 200  # synthetic crack patches are red, clean ones blue: a pixel tells which


def _solid_patches(root: Path, n: int, crack: bool) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        colour = (CRACK_RED, i, 0) if crack else (0, i, 200)
        path = root / f"{i:03d}.png"
        Image.new("RGB", (20, 20), colour).save(path)  # 20 px: build_mosaic resizes to `patch`
        paths.append(path)
    return paths


@pytest.fixture
def patches(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    return _solid_patches(tmp_path / "crack", 30, True), _solid_patches(
        tmp_path / "clean", 60, False
    )


def _is_crack_pixel(m: Mosaic, x: int, y: int) -> bool:
    return m.image.getpixel((x, y))[0] == CRACK_RED


def _cell_kinds(m: Mosaic) -> np.ndarray:
    rows, cols = m.truth.shape
    ox, oy = m.offset
    return np.array(
        [
            [_is_crack_pixel(m, ox + c * m.patch + m.patch // 2, oy + r * m.patch + m.patch // 2)
             for c in range(cols)]
            for r in range(rows)
        ]
    )  # fmt: skip


def _four_connected(cells: set[tuple[int, int]]) -> bool:
    start = next(iter(cells))
    seen, todo = {start}, [start]
    while todo:
        r, c = todo.pop()
        for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if nb in cells and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen == cells


@pytest.mark.parametrize(("rows", "cols", "n"), [(10, 13, 12), (3, 3, 9), (1, 7, 7), (4, 5, 1)])
def test_crack_walk_is_distinct_four_connected_and_in_bounds(rows: int, cols: int, n: int) -> None:
    for seed in range(50):
        walk = crack_walk(rows, cols, n, random.Random(seed))
        assert len(walk) == n and len(set(walk)) == n
        assert all(0 <= r < rows and 0 <= c < cols for r, c in walk)
        assert _four_connected(set(walk))
        # each cell is a 4-neighbour of some earlier cell: a walk, not a scatter
        for i, (r, c) in enumerate(walk[1:], start=1):
            assert any(abs(r - pr) + abs(c - pc) == 1 for pr, pc in walk[:i])


def test_crack_walk_starts_in_different_places() -> None:
    starts = {crack_walk(10, 13, 5, random.Random(seed))[0] for seed in range(40)}
    assert len(starts) > 20


def test_aligned_mosaic_geometry_and_truth(patches) -> None:
    crack, clean = patches
    m = build_mosaic(crack, clean, 4, 6, random.Random(3), crack_cells=5, patch=16)
    assert m.image.size == (6 * 16, 4 * 16) and m.image.mode == "RGB"
    assert m.truth.shape == (4, 6) and m.truth.dtype == bool and int(m.truth.sum()) == 5
    assert m.offset == (0, 0) and m.patch == 16
    assert (_cell_kinds(m) == m.truth).all()
    assert _four_connected({(int(r), int(c)) for r, c in zip(*np.nonzero(m.truth), strict=True)})
    # every pixel of a cell comes from one patch: corners agree with the centre
    for r, c in [(0, 0), (3, 5), (2, 1)]:
        x0, y0 = c * 16, r * 16
        colours = {m.image.getpixel((x, y)) for x in (x0, x0 + 15) for y in (y0, y0 + 15)}
        assert len(colours) == 1


def test_offset_mosaic_has_clean_margins_and_shifted_grid(patches) -> None:
    crack, clean = patches
    m = build_mosaic(crack, clean, 3, 5, random.Random(1), crack_cells=15, patch=16, offset=(7, 21))
    assert m.image.size == (5 * 16 + 7, 3 * 16 + 21)
    assert m.truth.all() and (_cell_kinds(m) == m.truth).all()  # every cell is a crack here
    width, height = m.image.size
    for x, y in [(0, 0), (6, 30), (50, 0), (width - 1, 20), (3, height - 1)]:
        assert not _is_crack_pixel(m, x, y), (x, y)  # the margins hold clean patches
    assert _is_crack_pixel(m, 7, 21) and _is_crack_pixel(m, width - 1, height - 1)


def test_mosaic_without_cracks_uses_only_clean_patches(patches) -> None:
    crack, clean = patches
    m = build_mosaic(crack, clean, 5, 5, random.Random(0), patch=8, offset=(3, 3))
    assert not m.truth.any()
    assert not (np.asarray(m.image)[:, :, 0] == CRACK_RED).any()
    assert build_mosaic([], clean, 2, 2, random.Random(0), patch=8).truth.shape == (2, 2)


def test_patches_do_not_repeat_while_there_are_enough(patches) -> None:
    crack, clean = patches
    m = build_mosaic(crack, clean, 5, 8, random.Random(2), crack_cells=10, patch=4)
    greens = np.asarray(m.image)[2::4, 2::4, 1]  # a patch's index is its green value
    reds = np.asarray(m.image)[2::4, 2::4, 0]
    assert len(set(greens[reds == CRACK_RED].tolist())) == 10
    assert len(set(greens[reds != CRACK_RED].tolist())) == 30


def test_same_seed_same_mosaic_other_seed_other_mosaic(patches) -> None:
    crack, clean = patches

    def make(seed: int) -> Mosaic:
        return build_mosaic(crack, clean, 4, 4, random.Random(seed), crack_cells=4, patch=8)

    a, b, c = make(11), make(11), make(12)
    assert (a.truth == b.truth).all() and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_bad_arguments_are_refused(patches) -> None:
    crack, clean = patches
    with pytest.raises(ValueError, match="crack_cells"):
        build_mosaic(crack, clean, 2, 2, random.Random(0), crack_cells=5)
    with pytest.raises(ValueError, match="no crack patches"):
        build_mosaic([], clean, 2, 2, random.Random(0), crack_cells=1)
    with pytest.raises(ValueError, match="offset"):
        build_mosaic(crack, clean, 2, 2, random.Random(0), offset=(-1, 0))


def test_cell_scores_aligned_tiles_are_the_cells() -> None:
    grid = tile_grid(13 * 227, 10 * 227, 227, 0.0)
    assert (grid.rows, grid.cols) == (10, 13)
    probs = np.arange(130, dtype=np.float64) / 130
    scores = cell_scores((10, 13), 227, (0, 0), grid, probs)
    assert np.array_equal(scores, probs.reshape(10, 13))


def test_cell_scores_take_the_tile_nearest_each_cell_centre() -> None:
    # 3 x 4 cells of 100 px at offset (30, 60); half-overlapping 100 px tiles, stride 50
    grid = tile_grid(4 * 100 + 30, 3 * 100 + 60, 100, 0.5)
    probs = np.arange(len(grid), dtype=np.float64).reshape(grid.rows, grid.cols)
    scores = cell_scores((3, 4), 100, (30, 60), grid, probs.ravel())
    centres_x, centres_y = grid.xs() + 50, grid.ys() + 50
    for r in range(3):
        for c in range(4):
            cx, cy = 30 + c * 100 + 50, 60 + r * 100 + 50
            d = (centres_y[:, None] - cy) ** 2 + (centres_x[None, :] - cx) ** 2
            assert d[np.unravel_index(int(scores[r, c]), d.shape)] == d.min()
    # cell centres at x = 75 and 125 lie halfway between two tile centres: the left one wins
    ties = tile_grid(200, 100, 100, 0.5)  # tile centres at x = 50, 100, 150
    assert ties.cols == 3
    scores = cell_scores((1, 4), 50, (0, 25), ties, np.array([0.0, 1.0, 2.0]))
    assert scores.tolist() == [[0.0, 0.0, 1.0, 2.0]]


def test_save_mosaic_writes_a_jpeg(tmp_path: Path, patches) -> None:
    crack, clean = patches
    m = build_mosaic(crack, clean, 2, 3, random.Random(0), crack_cells=2, patch=16)
    path = save_mosaic(m, tmp_path / "m.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (48, 32)


@pytest.mark.realdata
def test_held_out_patches_are_the_validation_split_of_real_photos() -> None:
    data = real_data_or_skip()
    crack, clean = held_out_patches(data)
    assert len(crack) > 100 and len(clean) > 100
    train = grouped_split(from_manifest(data / "manifest.csv"), val_fraction=0.2, seed=0).train
    trained = {Path(p).resolve() for p, _ in train}
    assert not trained & {p.resolve() for p in crack + clean}
    assert all("Positive" in p.parts for p in crack) and all("Negative" in p.parts for p in clean)


@pytest.mark.realdata
def test_real_mosaic_is_big_and_made_of_real_patches() -> None:
    crack, clean = held_out_patches(real_data_or_skip())
    m = build_mosaic(crack, clean, 10, 13, random.Random(0), crack_cells=6, offset=(40, 90))
    assert m.image.size == (13 * 227 + 40, 10 * 227 + 90) and int(m.truth.sum()) == 6
    r, c = (int(v[0]) for v in np.nonzero(m.truth))
    with Image.open(crack[0]) as first:
        assert first.size == (227, 227)
    box = (40 + c * 227, 90 + r * 227, 40 + (c + 1) * 227, 90 + (r + 1) * 227)
    cell = np.asarray(m.image.crop(box))
    sources = (np.asarray(Image.open(p).convert("RGB")) for p in crack)
    assert any(np.array_equal(cell, s) for s in sources)

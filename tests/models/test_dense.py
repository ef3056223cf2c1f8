"""The fully convolutional map: its windows are the ResNet's tiles, its blocks cover every tile."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models.dense import (
    CELL,
    DenseNet,
    block_tiles,
    blocks,
    dense_grid,
    dense_map_image,
    dense_step,
)
from models.dense_engine import TorchDense
from models.network import CRACK_INDEX, build_model
from models.numerics import resolve_numerics
from models.tiles import map_image
from models.transforms import normalise

FP32 = resolve_numerics("cpu", "fp32", False)


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model().eval()


def test_a_window_alone_is_exactly_the_resnet(resnet: torch.nn.Module) -> None:
    net = DenseNet(resnet, window=2, step=1).eval()
    x = normalise(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    with torch.inference_mode():
        dense, whole = net(x), resnet(x)
    assert dense.shape == (2, 2, 1, 1)
    torch.testing.assert_close(dense[:, :, 0, 0], whole, rtol=1e-5, atol=1e-5)


def test_a_bigger_input_gives_one_window_per_step(resnet: torch.nn.Module) -> None:
    net = DenseNet(resnet, window=2, step=1).eval()
    x = normalise(torch.randint(0, 256, (1, 64 + 3 * CELL, 64 + CELL, 3), dtype=torch.uint8))
    with torch.inference_mode():
        assert net(x).shape == (1, 2, 4, 2)


@pytest.mark.parametrize(
    ("overlap", "step", "stride"), [(0.0, 7, 227), (0.5, 4, 130), (0.75, 2, 65), (0.9, 1, 32)]
)
def test_the_stride_is_whole_cells_nearest_the_overlap(
    overlap: float, step: int, stride: int
) -> None:
    dense = dense_grid(4032, 3024, 227, 224, overlap)
    assert (dense.step, dense.grid.stride) == (step, stride)
    assert dense_step(224, overlap) == step


def test_input_sizes_off_the_cell_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        dense_grid(1000, 1000, 227, 227, 0.0)
    with pytest.raises(ValueError, match="overlap"):
        dense_grid(1000, 1000, 227, 224, 1.0)


@pytest.mark.parametrize(("width", "height"), [(1000, 700), (227 * 4, 227 * 3), (2000, 227)])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("block_px", [224, 448, 1024])
def test_blocks_cover_every_tile_once_on_its_own_box(
    width: int, height: int, overlap: float, block_px: int
) -> None:
    dense = dense_grid(width, height, 227, 224, overlap)
    g, seen = dense.grid, np.zeros((dense.grid.rows, dense.grid.cols), dtype=int)
    xs, ys = g.xs(), g.ys()
    n = block_tiles(dense, block_px)
    for b in blocks(dense, n):
        (r0, r1), (c0, c1) = b.rows, b.cols
        assert r1 - r0 < n and c1 - c0 < n
        assert max(b.size) <= max(block_px, 224)
        seen[r0 : r1 + 1, c0 : c1 + 1] += 1
        assert b.box == (xs[c0], ys[r0], xs[c1] + g.tile, ys[r1] + g.tile)
        # tiles of a block are evenly spaced, so they land on the network's windows
        assert np.all(np.diff(xs[c0 : c1 + 1]) == g.stride)
        assert np.all(np.diff(ys[r0 : r1 + 1]) == g.stride)
        pitch = dense.step * CELL
        assert b.size == ((c1 - c0) * pitch + 224, (r1 - r0) * pitch + 224)
    assert (seen == 1).all()
    assert xs[-1] + g.tile == width and ys[-1] + g.tile == height


def test_blocks_of_one_tile_give_exactly_the_tiled_map(resnet: torch.nn.Module) -> None:
    """A one-tile block is the tile cropped and resized as the tiled path does it."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    dense = dense_grid(*image.size, 227, 64, 0.5)
    engine = TorchDense(resnet, FP32, 64, dense.step)

    def tiles(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(resnet(normalise(torch.from_numpy(x))), 1)[:, CRACK_INDEX].numpy()

    tiled = map_image(image, dense.grid, tiles, size=64, batch=8, threshold=0.5)
    one = dense_map_image(image, dense, engine.predict, block=1, threshold=0.5)
    np.testing.assert_allclose(one.probabilities, tiled.probabilities, atol=1e-5)
    shared = dense_map_image(image, dense, engine.predict, block=4, threshold=0.5)
    assert shared.probabilities.shape == tiled.probabilities.shape

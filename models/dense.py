"""Crack maps fully convolutional: ResNet50's pooling as a sliding window, its head a 1x1 conv.

The tiled map (models.tiles) runs every tile through the network on its own. Overlapping
tiles share most of their pixels, so most of that work is done again and again. Here the
network runs once over a block of the photo: its last feature map has one cell per 32
pixels, a tile covers `input_size / 32` cells (7 for 224 px), and averaging each 7x7
window of cells, then applying the classifier to it (the fully connected layer as a 1x1
convolution), gives every tile of the block at once, at any stride that is a whole number
of cells. The answers are not identical to the tiled ones: inside a block a tile's border
convolutions see its neighbours' pixels instead of zero padding. The parity check
(tests/models/test_dense_parity.py) measures how far apart the two maps are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models import ResNet

from models.network import CRACK_INDEX
from models.threshold import at_half
from models.tiles import CrackMap, TileGrid, crack_map

CELL = 32  # ResNet50's output stride: pixels of input per cell of its last feature map
# Smallest network input the dense map is offered for. At 224 px (7x7 cells a tile) dense
# and tiled maps agree on 98% of tiles; a 64 px model (2x2 cells, its receptive field
# far past the tile) agreed on 90% in the parity test, so smaller models map tile by tile.
MIN_DENSE_INPUT = 224

# uint8 (1, H, W, 3) pixels of a block -> raw crack probabilities (rows, cols) of its windows
PredictBlock = Callable[[np.ndarray], np.ndarray]


class DenseNet(nn.Module):
    """A ResNet50 as a fully convolutional net: normalised (N,3,H,W) -> logits (N,2,rows,cols).

    Window (r, c) is the input square of `window * CELL` px whose top-left corner is at
    (c, r) * `step` * CELL; its logits are exactly what the ResNet50 gives for that square
    alone when the square is the whole input (the check in the tests).
    """

    def __init__(self, resnet: nn.Module, window: int, step: int) -> None:
        super().__init__()
        if not isinstance(resnet, ResNet):
            raise TypeError(f"a dense map needs a torchvision ResNet, got {type(resnet).__name__}")
        r = resnet
        self.trunk = nn.Sequential(
            r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4
        )
        self.pool = nn.AvgPool2d(window, stride=step)
        fc = r.fc
        assert isinstance(fc, nn.Linear), "a torchvision ResNet's head is one Linear layer"
        self.head = nn.Conv2d(fc.in_features, fc.out_features, kernel_size=1)
        with torch.no_grad():
            self.head.weight.copy_(fc.weight[:, :, None, None])
            self.head.bias.copy_(fc.bias)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.trunk(x)))


def window_cells(input_size: int) -> int:
    """Cells a tile covers on the last feature map; the dense path needs a multiple of CELL."""
    if input_size % CELL:
        raise ValueError(
            f"the fully convolutional map needs an input size that is a multiple of {CELL}, "
            f"got {input_size}"
        )
    return input_size // CELL


@dataclass(frozen=True)
class DenseGrid:
    """A tile grid whose lattice stride is a whole number of cells of the network's output.

    `grid` is an ordinary TileGrid (stride in photo pixels, last row and column clamped to
    the border), so maps from either path are stored and read the same way.
    """

    grid: TileGrid
    step: int  # cells between neighbouring windows
    input_size: int

    @property
    def window(self) -> int:
        return window_cells(self.input_size)


def dense_step(input_size: int, overlap: float) -> int:
    """Cells between neighbouring windows for a tile `overlap`: the nearest whole number, >= 1."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    return max(1, round(window_cells(input_size) * (1.0 - overlap)))


def dense_grid(width: int, height: int, tile: int, input_size: int, overlap: float) -> DenseGrid:
    """The grid closest to `overlap` whose stride is whole cells (0 overlap: stride = tile).

    A tile of `tile` px is seen at `input_size` px, so one cell is CELL * tile / input_size
    photo pixels; the stride is rounded to the nearest whole number of cells (at least one).
    """
    side = max(1, min(tile, width, height))
    step = dense_step(input_size, overlap)
    stride = max(1, round(step * CELL * side / input_size))
    return DenseGrid(TileGrid(width, height, side, stride), step, input_size)


@dataclass(frozen=True)
class Block:
    """Tiles rows[0]..rows[1] x cols[0]..cols[1] (inclusive) and the photo box they cover."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    box: tuple[int, int, int, int]
    size: tuple[int, int]  # (width, height) the box is resized to before the network


def _runs(starts: np.ndarray, stride: int, block: int) -> list[tuple[int, int]]:
    """Index ranges of tiles on the lattice (start == index * stride), `block` at a time;
    a last tile clamped off the lattice is a range of its own."""
    n = len(starts)
    lattice = n if starts[-1] == (n - 1) * stride else n - 1
    runs = [(a, min(a + block, lattice) - 1) for a in range(0, lattice, block)]
    if lattice < n:
        runs.append((n - 1, n - 1))
    return runs


def block_tiles(dense: DenseGrid, block_px: int) -> int:
    """Tiles per block side for blocks of at most `block_px` network pixels (at least one)."""
    return max(1, (block_px - dense.input_size) // (dense.step * CELL) + 1)


def blocks(dense: DenseGrid, block: int) -> Iterator[Block]:
    """The blocks covering every tile of `dense`, at most `block` x `block` tiles each.

    Each block's box is resized so that its tiles land exactly on the network's windows:
    (n - 1) * step * CELL + input_size px for n tiles, a scale within a fraction of a
    percent of the tiled path's tile -> input_size.
    """
    g, pitch = dense.grid, dense.step * CELL
    xs, ys = g.xs(), g.ys()
    for r0, r1 in _runs(ys, g.stride, block):
        for c0, c1 in _runs(xs, g.stride, block):
            box = (int(xs[c0]), int(ys[r0]), int(xs[c1]) + g.tile, int(ys[r1]) + g.tile)
            size = ((c1 - c0) * pitch + dense.input_size, (r1 - r0) * pitch + dense.input_size)
            yield Block((r0, r1), (c0, c1), box, size)


def block_pixels(image: Image.Image, b: Block) -> np.ndarray:
    """uint8 (1, H, W, 3): the block's box of `image`, resized as the tiled path resizes a tile."""
    crop = image.crop(b.box)
    if crop.size != b.size:
        crop = crop.resize(b.size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.array(crop, dtype=np.uint8)[None]  # writable: torch.from_numpy wants that


def dense_map_image(
    image: Image.Image,
    dense: DenseGrid,
    predict: PredictBlock,
    *,
    block: int,
    threshold: float,
) -> CrackMap:
    """The crack map of `image` over `dense.grid`, block by block through `predict`.

    Only one block's pixels exist at a time, so memory is bounded by `block`, not the photo.
    """
    g = dense.grid
    raw = np.zeros((g.rows, g.cols), dtype=np.float64)
    for b in blocks(dense, block):
        out = np.asarray(predict(block_pixels(image, b)), dtype=np.float64)
        (r0, r1), (c0, c1) = b.rows, b.cols
        expected = (r1 - r0 + 1, c1 - c0 + 1)
        if out.shape != expected:
            raise RuntimeError(f"block of {expected} tiles gave windows {out.shape}")
        raw[r0 : r1 + 1, c0 : c1 + 1] = out
    return crack_map(g, at_half(raw.ravel(), threshold))


def crack_probabilities(logits: torch.Tensor) -> np.ndarray:
    """(1, 2, rows, cols) logits -> float32 (rows, cols) crack probabilities."""
    return torch.softmax(logits.float(), dim=1)[0, CRACK_INDEX].cpu().numpy()

"""EvalPreset's torch resize gives PIL's pixels (within one level) on real and odd-shaped photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.transforms import EvalPreset
from tests.conftest import real_data_or_skip


def pil_preset(img: Image.Image, size: int) -> np.ndarray:
    """The preprocessing crackq had before the torch resize: PIL bilinear, then a centre crop."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "shape",
    [(227, 227), (300, 227), (227, 400), (448, 300), (200, 150), (224, 224), (1000, 700)],
)
def test_eval_preset_matches_pil_within_one_level(shape: tuple[int, int]) -> None:
    img = noise(*shape)
    ours, theirs = EvalPreset(224)(img), pil_preset(img, 224)
    assert ours.shape == theirs.shape == (224, 224, 3)
    assert ours.dtype == np.uint8 and ours.flags["C_CONTIGUOUS"]
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1
    assert diff.mean() < 0.05  # noise is the hardest case: a few rounding ties per 100 pixels


def test_eval_preset_on_real_photos_is_pils_within_one_level() -> None:
    data = real_data_or_skip()
    paths = (
        sorted((data / "Positive").glob("*.jpg"))[:40]
        + sorted((data / "Negative").glob("*.jpg"))[:40]
    )
    diffs = []
    for path in paths:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        diffs.append(np.abs(EvalPreset(224)(rgb).astype(int) - pil_preset(rgb, 224).astype(int)))
    assert max(int(d.max()) for d in diffs) <= 1
    assert float(np.mean([d.mean() for d in diffs])) < 0.001

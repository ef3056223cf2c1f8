"""Synthetic concrete photos: files, labels, determinism, and a visible crack signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.datasets import from_folder
from models.synthetic import make_synthetic_dataset


def _dark_share(path: str) -> float:
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    return float((grey < 0.6 * np.median(grey)).mean())


def test_writes_labelled_jpegs_that_from_folder_reads_back(tmp_path: Path) -> None:
    samples = make_synthetic_dataset(tmp_path, 6, size=80, seed=3)
    assert len(samples) == 12 and sorted({y for _, y in samples}) == [0, 1]
    assert sorted(from_folder(tmp_path)) == sorted(samples)
    for path, label in samples:
        assert Path(path).parent.name == ("Positive" if label else "Negative")
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size == (80, 80) and img.mode == "RGB"


def test_same_seed_same_images_and_more_images_keep_the_first(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", 3, size=64, seed=1)
    b = make_synthetic_dataset(tmp_path / "b", 5, size=64, seed=1)
    c = make_synthetic_dataset(tmp_path / "c", 3, size=64, seed=2)
    for (pa, _), (pb, _), (pc, _) in zip(
        a, [s for s in b if int(Path(s[0]).stem) <= 3], c, strict=True
    ):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
        assert Path(pa).read_bytes() != Path(pc).read_bytes()


def test_cracked_images_carry_a_dark_line_the_others_lack(tmp_path: Path) -> None:
    samples = make_synthetic_dataset(tmp_path, 20, seed=0)
    crack = [_dark_share(p) for p, y in samples if y == 1]
    plain = [_dark_share(p) for p, y in samples if y == 0]
    assert min(crack) > 0.002  # every crack image has a visible line
    assert np.median(crack) > 5 * max(np.median(plain), 1e-4)

"""Fixtures for the ML tests: small image files and a synthetic data set built in code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from models.datasets import Sample
from models.synthetic import make_synthetic_dataset


@pytest.fixture
def make_image() -> Callable[..., str]:
    """Write a solid grey image of `value` and return its path."""

    def make(path: Path, value: int = 128, size: tuple[int, int] = (40, 40)) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (value, value, value)).save(path)
        return str(path)

    return make


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Sample]]:
    """Small synthetic train (32 per class) and val (12 per class) sets, 64 px."""
    root = tmp_path_factory.mktemp("synthetic")
    return {
        "train": make_synthetic_dataset(root / "train", 32, size=64, seed=0),
        "val": make_synthetic_dataset(root / "val", 12, size=64, seed=1),
    }

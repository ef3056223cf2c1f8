"""Worker tests: a network jail (no packet leaves loopback, every connect recorded), training data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.netjail import Net, install
from models.synthetic import make_synthetic_dataset


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:
    """Every worker test runs jailed; a test fails if anything tried to leave loopback."""
    jail = Net()
    install(jail, monkeypatch.setattr)  # undone by monkeypatch after the test
    yield jail
    assert not jail.leaks, f"connections attempted beyond loopback: {jail.leaks}"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft") / "data"
    make_synthetic_dataset(root, 24, size=64, seed=3)
    return root

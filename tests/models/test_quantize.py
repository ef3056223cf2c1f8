"""The INT8 gate: which quantised graphs are kept (the graph itself: test_numerics_parity)."""

from __future__ import annotations

import numpy as np
import pytest

from models.quantize import MIN_CHECK_PHOTOS, Parity, compare


def _flipped(p: np.ndarray, n: int) -> np.ndarray:
    out = p.copy()
    out[:n] = 1.0 - out[:n]
    return out


def test_parity_needs_995_in_1000_labels_small_shifts_and_enough_photos() -> None:
    p32 = np.linspace(0.6, 0.99, MIN_CHECK_PHOTOS)  # every photo a crack
    assert compare(p32, p32) == Parity(MIN_CHECK_PHOTOS, 1.0, 0.0)
    one = compare(p32, _flipped(p32, 1))  # 1 of 200 flipped: 99.5%, at the bar
    assert one.agreement == 0.995 and one.passed
    two = compare(p32, _flipped(p32, 2))
    assert two.agreement == 0.99 and not two.passed
    drift = compare(p32, p32 - 0.011)  # no label changes, but every probability moved
    assert drift.agreement == 1.0 and not drift.passed
    few = compare(p32[:-1], p32[:-1])  # perfect, but too few photos to show 99.5%
    assert few.agreement == 1.0 and not few.passed
    assert few.to_dict()["passed"] is False and two.to_dict()["photos"] == MIN_CHECK_PHOTOS
    with pytest.raises(ValueError, match="equal, non-empty"):
        compare(p32, p32[:10])

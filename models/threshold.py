"""The operating point: probabilities rescaled so that a model's threshold reads as 0.5."""

from __future__ import annotations

import numpy as np

# Rounding must never contradict the label: a crack stays >= 0.5, a clean photo below it,
# also once stored as float32 (a map's tiles) or rounded to 6 digits (1e-12 would not be).
BELOW_HALF = 0.5 - 1e-6


def at_half(p: np.ndarray | float, threshold: float) -> np.ndarray:
    """Crack probabilities `p` with `threshold` moved to 0.5 (odds divided by its odds).

    A checkpoint chooses its threshold on validation data; stored probabilities are
    rescaled so a row (or a map tile) reads the same whatever the model: crack exactly
    when >= 0.5. Monotonic, and 0 and 1 stay 0 and 1.
    """
    t = min(max(threshold, 1e-4), 1.0 - 1e-4)  # 0 or 1 would make everything one class
    p = np.asarray(p, dtype=np.float64)
    odds_p, odds_t = p * (1.0 - t), (1.0 - p) * t
    total = odds_p + odds_t
    crack = p >= t
    q = np.where(total > 0, odds_p / np.where(total > 0, total, 1.0), crack)
    return np.where(crack, np.maximum(q, 0.5), np.minimum(q, BELOW_HALF))

"""Result rows: what a photo's row holds when it succeeded or failed."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from models.network import CLASSES, CRACK_INDEX
from models.threshold import at_half
from worker.errors import ImageError
from worker.jobs import Item


def verdict(p: float, threshold: float) -> dict[str, Any]:
    """Label, confidence and stored crack probability of one photo at the model's threshold.

    The label is the one comparison with the threshold the checkpoint chose on its
    validation set. The stored probability is rescaled so that the threshold sits at 0.5
    (models.threshold.at_half), so a row reads the same whatever the model: crack
    exactly when crack_probability >= 0.5, and confidence, the probability of the
    predicted label, in [0.5, 1].
    """
    q = float(at_half(p, threshold))
    crack = q >= 0.5
    return {
        "status": "succeeded",
        "label": CLASSES[CRACK_INDEX] if crack else CLASSES[1 - CRACK_INDEX],
        "confidence": q if crack else 1.0 - q,
        "crack_probability": q,
    }


def base_row(item: Item) -> dict[str, Any]:
    return {
        "request_id": item.request_id,
        "image_ref": item.image_ref,
        "batch_id": item.batch_id,
        "submitted_at": item.submitted_at,
        **asset_fields(item),
    }


def asset_fields(item: Item) -> dict[str, Any]:
    """The row columns of what a photo shows (NULL when the message did not say)."""
    return {
        "asset_id": item.asset_id,
        "inspection_id": item.inspection_id,
        "captured_at": item.captured_at,
        "metadata": item.metadata,
    }


def failed_row(item: Item, error: ImageError, decode_ms: float | None = None) -> dict[str, Any]:
    """The row of an item that could not be classified, with its recorded code."""
    return {
        **base_row(item),
        "status": "failed",
        "error_code": error.code.value,
        "error_message": error.message[:2000],
        "decode_ms": decode_ms,
    }


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0

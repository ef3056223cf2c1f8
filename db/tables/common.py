"""What several table modules share: the label and mode vocabularies and a timestamp column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, func
from sqlalchemy.orm import mapped_column

LABELS = ("crack", "no_crack")
RESULT_MODES = ("patch", "map")  # classified whole, or mapped tile by tile


def now_column() -> Any:
    """A timezone-aware timestamp column the server fills with now()."""
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

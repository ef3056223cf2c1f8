"""Settings of re-scoring stored rows with another version (crackq rescore)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RescoreSettings(BaseModel):
    """Re-scoring stored rows with another version (crackq rescore)."""

    rescore_window: int = Field(
        16,
        ge=1,
        description="crackq rescore sends only while fewer than this many messages, live "
        "and re-score, wait in the inference queue or are held unacked by workers.",
    )
    rescore_rate: float = Field(
        0.0,
        ge=0,
        description="crackq rescore sends at most this many photos per second; 0 = as fast "
        "as CRACKQ_RESCORE_WINDOW allows.",
    )
    rescore_busy_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Largest share of a worker's forward passes' time that re-score passes "
        "take while live photos arrive (after a re-score pass, the next waits until live "
        "photos could have had the rest); 1 = no cap. Without live photos re-scores run at "
        "full speed.",
    )

"""Settings of the review queue: which photos operators are asked to label."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReviewSettings(BaseModel):
    """The review queue (README "Review queue")."""

    review: bool = Field(
        True,
        description="Inference workers put photos in the review queue by its rules when "
        "they store them (crackq review); false = none enter.",
    )
    review_band: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="A photo whose crack probability is within 0.5 +- this enters as "
        "uncertain; a mapped photo with a counted region whose strongest tile is within it, "
        "or crack tiles but no region that counts, as borderline_map; 0 = neither.",
    )
    review_sample_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of confident photos (no rule picked them) drawn for review as "
        "sample; 0 = none.",
    )
    review_sample_per_hour: int = Field(
        20,
        ge=0,
        description="At most this many sample photos enter in any hour, across every worker.",
    )

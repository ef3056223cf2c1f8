"""Settings of the promotion gates: figures from shadowed traffic."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GateSettings(BaseModel):
    """Promotion gates: figures from shadowed traffic (crackq models compare)."""

    promote_min_shadowed: int = Field(
        0,
        ge=0,
        description="A version is promoted only after scoring at least this many live "
        "photos in shadow (crackq models shadow); 0 = no minimum.",
    )
    promote_max_flip_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A version is promoted only when it changes the label of at most this "
        "share of its shadowed photos; empty = no limit.",
    )
    promote_require_labelled_accuracy: bool = Field(
        False,
        description="A version is promoted only when it is at least as accurate as the live "
        "answers on its shadowed photos that operators labelled (crackq label).",
    )

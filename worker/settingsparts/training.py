"""Settings of fine-tuning runs: their time limit and when one is promoted."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrainingSettings(BaseModel):
    """Training: time limit and the validation figures a finished run must beat."""

    training_time_limit_s: int = Field(4 * 3600, ge=60, description="Hard limit per run.")
    auto_promote: bool = Field(
        True, description="Promote a finished run if it beats the promoted model."
    )
    promote_auc_margin: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="A finished run beats the promoted model when its validation AUC is at "
        "least the promoted model's AUC on the same photos plus this margin (accuracy when "
        "an AUC is undefined); 0 = a tie promotes, negative = tolerate a drop.",
    )
    promote_max_group_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="With manifest groups: a finished run beats the promoted model only if "
        "its worst group's accuracy is at most this much below the promoted model's worst "
        "group; empty = not checked.",
    )

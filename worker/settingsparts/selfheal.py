"""Settings of self-healing: dead training runs and unacknowledged messages."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SelfHealSettings(BaseModel):
    """Self-healing: training runs and unacknowledged messages."""

    training_max_time_limit_s: int = Field(
        12 * 3600,
        ge=60,
        description="Largest time limit a run may ask for (--time-limit-s); a longer one "
        "is refused when the run is submitted.",
    )
    run_heartbeat_s: float = Field(
        10.0, gt=0, description="How often a running training run records a heartbeat."
    )
    run_dead_after_s: float = Field(
        150.0,
        gt=0,
        description="A running training run without a heartbeat for this long is marked "
        "failed (its worker died); any live worker, and `crackq finetune status/list`, sweep.",
    )
    self_heal: bool = Field(
        True,
        description="Workers put back on the queue the unacknowledged messages of workers "
        "that died, and re-send rows whose message was lost (see README, Self-healing).",
    )
    holds_heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often each worker publishes the delivery tags it holds unacked.",
    )
    holds_ttl_s: float = Field(
        30.0,
        gt=0,
        description="A worker silent this long is dead: unacked messages no live worker "
        "holds, delivered at least this long ago, go back to the queue. Exceeds "
        "CRACKQ_HOLDS_HEARTBEAT_S a few times over.",
    )
    sweep_s: float = Field(
        15.0,
        gt=0,
        description="How often workers sweep: dead training runs, and (one worker at a "
        "time, by a Redis lock) orphaned and lost inference messages.",
    )
    requeue_lost_after_s: float = Field(
        600.0,
        gt=0,
        description="A row queued this long whose message is neither queued nor held "
        "unacked in Redis is re-sent (two sweeps in a row must find it so).",
    )

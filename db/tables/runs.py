"""The `training_runs` table: one fine-tuning run's config, live progress and outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import now_column

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class TrainingRun(Base):
    """One fine-tuning run: its resolved config, live progress and outcome."""

    __tablename__ = "training_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index("ix_training_runs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    sources: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    data_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    model_version: Mapped[str | None] = mapped_column(String(100))
    promoted: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    artifacts_dir: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = now_column()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the Celery node running it and its last sign of life (a run without one is swept)
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    retry_of: Mapped[str | None] = mapped_column(String(64))
    # the run's files in the artifact store: name -> {"url", "sha256", "size"}
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")

"""The model registry: registered versions and the events that promote, roll back or fail them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import now_column

MODEL_STATUSES = ("candidate", "promoted", "retired")
# shadow_on / shadow_off: a version started or stopped scoring live photos in shadow
MODEL_EVENT_ACTIONS = ("promote", "rollback", "load_failed", "shadow_on", "shadow_off")


class ModelVersion(Base):
    """A registered model: where its checkpoint lies, what it scored, and its status."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"status IN {MODEL_STATUSES!r}", name="status"),
        Index(
            "uq_model_versions_one_promoted",
            "status",
            unique=True,
            postgresql_where=text("status = 'promoted'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    parent_version: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="candidate")
    checkpoint_uri: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    architecture: Mapped[str] = mapped_column(String(64), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    data_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[dt.datetime] = now_column()
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the first error an inference worker met loading it (see ModelEvent for each worker's)
    load_error: Mapped[str | None] = mapped_column(Text)


class ModelEvent(Base):
    """One registry event: a promotion, a rollback, or a worker that could not load a version."""

    __tablename__ = "model_events"
    __table_args__ = (
        CheckConstraint(f"action IN {MODEL_EVENT_ACTIONS!r}", name="action"),
        Index("ix_model_events_version", "version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    previous_version: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = now_column()

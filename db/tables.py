"""The crackq tables. `results` is a public interface: reporting tools read it directly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

LABELS = ("crack", "no_crack")
RESULT_STATUSES = ("queued", "succeeded", "failed")
MODEL_STATUSES = ("candidate", "promoted", "retired")


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Result(Base):
    """One classified (or failed) image reference, keyed by the client's request id."""

    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint(f"status IN {RESULT_STATUSES!r}", name="status"),
        CheckConstraint(f"label IS NULL OR label IN {LABELS!r}", name="label"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"
        ),
        Index("ix_results_created_at", "created_at"),
        Index("ix_results_finished_at", "finished_at"),
        Index("ix_results_status_created_at", "status", "created_at"),
        Index("ix_results_label_created_at", "label", "created_at"),
        Index("ix_results_model_version", "model_version"),
        Index("ix_results_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    batch_id: Mapped[str | None] = mapped_column(String(200))
    image_ref: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    crack_probability: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    decode_ms: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()


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
    created_at: Mapped[dt.datetime] = _now()
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


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
    created_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Label(Base):
    """An operator's ground-truth label for a stored result, used as training data."""

    __tablename__ = "labels"
    __table_args__ = (CheckConstraint(f"label IN {LABELS!r}", name="label"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(200),
        ForeignKey("results.request_id", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    )
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    labelled_by: Mapped[str] = mapped_column(String(200), nullable=False)
    labelled_at: Mapped[dt.datetime] = _now()


class DeadLetter(Base):
    """A message refused before it could become a result row, kept for operators to replay."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[str | None] = mapped_column(String(255))
    task_name: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    received_at: Mapped[dt.datetime] = _now()
    replayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

"""The `results` table (a public interface: reporting tools read it) and its crack maps."""

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
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import LABELS, RESULT_MODES, now_column

RESULT_STATUSES = ("queued", "succeeded", "failed")


class Result(Base):
    """One classified (or failed) image reference, keyed by the client's request id."""

    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint(f"status IN {RESULT_STATUSES!r}", name="status"),
        CheckConstraint(f"label IS NULL OR label IN {LABELS!r}", name="label"),
        CheckConstraint(f"mode IS NULL OR mode IN {RESULT_MODES!r}", name="mode"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"
        ),
        Index("ix_results_created_at", "created_at"),
        Index("ix_results_finished_at", "finished_at"),
        Index("ix_results_status_created_at", "status", "created_at"),
        Index("ix_results_label_created_at", "label", "created_at"),
        Index("ix_results_model_version", "model_version"),
        Index("ix_results_batch_id", "batch_id"),
        Index("ix_results_asset_id_captured_at", "asset_id", "captured_at"),
        Index("ix_results_inspection_id", "inspection_id"),
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
    # Crack maps (mode 'map'): how many tiles, how many called crack, the share of the
    # photo they cover and their connected regions; NULL for photos classified whole.
    mode: Mapped[str | None] = mapped_column(String(8))
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    crack_area_fraction: Mapped[float | None] = mapped_column(Float)
    crack_regions: Mapped[int | None] = mapped_column(Integer)
    # What the photo shows, from the producer (all optional): the asset, the inspection it
    # belongs to, when it was taken and a small free-form object (bounded by the message
    # schema). `metadata` is taken on declarative classes, hence the attribute's name.
    asset_id: Mapped[str | None] = mapped_column(String(200))
    inspection_id: Mapped[str | None] = mapped_column(String(200))
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    asset_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = now_column()
    updated_at: Mapped[dt.datetime] = now_column()


class CrackMapRow(Base):
    """The tile map of one photo: geometry and one crack probability per tile (0.5 = crack)."""

    __tablename__ = "crack_maps"

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), primary_key=True
    )
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    tile: Mapped[int] = mapped_column(Integer, nullable=False)
    stride: Mapped[int] = mapped_column(Integer, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    cols: Mapped[int] = mapped_column(Integer, nullable=False)
    # row-major, rows * cols values: probabilities[r * cols + c] is tile (r, c)
    probabilities: Mapped[list[float]] = mapped_column(ARRAY(REAL), nullable=False)
    model_version: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = now_column()


class CrackRegionRow(Base):
    """Connected crack tiles of a map: bounding box in photo pixels, size, strongest tile."""

    __tablename__ = "crack_regions"
    __table_args__ = (Index("ix_crack_regions_request_id", "request_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    region: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 = the strongest
    x0: Mapped[int] = mapped_column(Integer, nullable=False)
    y0: Mapped[int] = mapped_column(Integer, nullable=False)
    x1: Mapped[int] = mapped_column(Integer, nullable=False)
    y1: Mapped[int] = mapped_column(Integer, nullable=False)
    tiles: Mapped[int] = mapped_column(Integer, nullable=False)
    max_probability: Mapped[float] = mapped_column(Float, nullable=False)

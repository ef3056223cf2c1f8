"""Every version's answer for each photo (`result_scores`) and the re-score jobs that add them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import LABELS, now_column

SCORE_SOURCES = ("live", "rescore")  # scored as the photo arrived, or by `crackq rescore`
RESCORE_STATUSES = ("running", "done")


class ResultScore(Base):
    """One model version's answer for one photo; `results` holds the latest of them.

    Written with the row it scored, in one transaction: live, and by every re-score
    (crackq rescore). The first answer of a (request id, version) pair is kept.
    """

    __tablename__ = "result_scores"
    __table_args__ = (
        PrimaryKeyConstraint("request_id", "model_version"),
        CheckConstraint(f"label IN {LABELS!r}", name="label"),
        CheckConstraint(f"source IN {SCORE_SOURCES!r}", name="source"),
        Index("ix_result_scores_model_version", "model_version"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    # not a registry key: a live row may be answered by an explicit checkpoint's version
    model_version: Mapped[str] = mapped_column(String(100), nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    crack_probability: Mapped[float | None] = mapped_column(Float)
    mode: Mapped[str | None] = mapped_column(String(8))
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    crack_area_fraction: Mapped[float | None] = mapped_column(Float)
    crack_regions: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8), nullable=False)
    scored_at: Mapped[dt.datetime] = now_column()


class RescoreJob(Base):
    """One `crackq rescore`: its rows (range, asset), the version, and how far it has sent.

    `last_id` is the cursor (results.id of the last row sent); the same command run again
    finds its running job by `key` and goes on from there.
    """

    __tablename__ = "rescore_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {RESCORE_STATUSES!r}", name="status"),
        Index(
            "uq_rescore_jobs_running_key",
            "key",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    asset_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    total: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    started_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[dt.datetime] = now_column()
    updated_at: Mapped[dt.datetime] = now_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

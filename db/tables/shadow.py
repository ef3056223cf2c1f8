"""Shadow scoring: the one version workers also score live photos with, and its answers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import LABELS, RESULT_MODES, now_column


class ShadowSetting(Base):
    """The version inference workers also score live photos with, and the share they score.

    At most one row (id 1): one shadow version at a time. Workers poll it with the
    registry, so a restarted worker shadows again (worker.shadow).
    """

    __tablename__ = "model_shadow"
    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        CheckConstraint("fraction > 0 AND fraction <= 1", name="fraction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    fraction: Mapped[float] = mapped_column(Float, nullable=False)
    started_by: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[dt.datetime] = now_column()


class ShadowScore(Base):
    """A shadow version's answer for one live photo; the photo's `results` row is untouched.

    label and crack_probability read as on results (crack exactly when >= 0.5). A mapped
    photo also keeps how many tiles the shadow mapped and called crack.
    """

    __tablename__ = "shadow_scores"
    __table_args__ = (
        PrimaryKeyConstraint("request_id", "version"),
        CheckConstraint(f"label IN {LABELS!r}", name="label"),
        CheckConstraint(f"mode IN {RESULT_MODES!r}", name="mode"),
        Index("ix_shadow_scores_version", "version"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    crack_probability: Mapped[float] = mapped_column(Float, nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = now_column()

"""Ground-truth labels and the review queue that asks a person for them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import LABELS, now_column

# Why a photo entered the review queue (README "Review queue"; db.reviewrules.enter).
REVIEW_REASONS = ("uncertain", "borderline_map", "asset_changed", "sample")
REVIEW_STATES = ("open", "labelled", "skipped")


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
    labelled_at: Mapped[dt.datetime] = now_column()


class ReviewEntry(Base):
    """A stored photo picked for a person to look at, and what became of it.

    One entry per photo, with the first rule that picked it. A reviewer's answer is a
    `labels` row (who, when) and closes the entry as `labelled` with the same answer,
    person and time; `skipped` closes it without a label.
    """

    __tablename__ = "review_queue"
    __table_args__ = (
        CheckConstraint(f"reason IN {REVIEW_REASONS!r}", name="reason"),
        CheckConstraint(f"state IN {REVIEW_STATES!r}", name="state"),
        CheckConstraint(f"answer IS NULL OR answer IN {LABELS!r}", name="answer"),
        CheckConstraint(
            "(state = 'open') = (decided_at IS NULL) AND (state = 'labelled') = (answer IS NOT NULL)",
            name="decided",
        ),
        Index("ix_review_queue_state_entered_at", "state", "entered_at"),
        Index("ix_review_queue_reason_entered_at", "reason", "entered_at"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    answer: Mapped[str | None] = mapped_column(String(16))
    entered_at: Mapped[dt.datetime] = now_column()
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

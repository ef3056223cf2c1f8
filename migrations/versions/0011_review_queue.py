"""the review queue: photos picked for a person to look at, by a documented rule

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 16:10:00

Inference workers put a stored photo in `review_queue` when a rule picks it (README
"Review queue"): `uncertain` (crack probability within CRACKQ_REVIEW_BAND of 0.5),
`borderline_map` (a mapped photo with a tile in that band), `asset_changed` (its asset's
inspection verdict differs from the inspection before) or `sample` (a capped random
sample of confident photos). A reviewer's answer goes to `labels` (who, when) and closes
the entry. One entry per photo; readable by the reporting role. Downgrade drops it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
REASONS = ("uncertain", "borderline_map", "asset_changed", "sample")
STATES = ("open", "labelled", "skipped")
LABELS = ("crack", "no_crack")


def _grant(sql: str) -> str:
    return f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN {sql} END IF; END $$;"


def upgrade() -> None:
    op.create_table(
        "review_queue",
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column(
            "entered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"reason IN {REASONS!r}", name=op.f("ck_review_queue_reason")),
        sa.CheckConstraint(f"state IN {STATES!r}", name=op.f("ck_review_queue_state")),
        sa.CheckConstraint(
            f"answer IS NULL OR answer IN {LABELS!r}", name=op.f("ck_review_queue_answer")
        ),
        sa.CheckConstraint(
            "(state = 'open') = (decided_at IS NULL) AND (state = 'labelled') = (answer IS NOT NULL)",
            name=op.f("ck_review_queue_decided"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["results.request_id"],
            name=op.f("fk_review_queue_request_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_review_queue")),
    )
    op.create_index(
        "ix_review_queue_state_entered_at", "review_queue", ["state", "entered_at"], unique=False
    )
    op.create_index(
        "ix_review_queue_reason_entered_at", "review_queue", ["reason", "entered_at"], unique=False
    )
    op.execute(_grant(f"GRANT SELECT ON review_queue TO {ROLE};"))


def downgrade() -> None:
    op.drop_index("ix_review_queue_reason_entered_at", table_name="review_queue")
    op.drop_index("ix_review_queue_state_entered_at", table_name="review_queue")
    op.drop_table("review_queue")

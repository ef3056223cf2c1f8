"""training run heartbeats, model load errors and the registry's event history

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00

A running run records its worker and a heartbeat, so a run whose worker died is marked
failed instead of staying `running` forever. `model_events` records every promotion,
rollback and failed load, so a rollback walks back through the history; existing
promotions are backfilled from `model_versions.promoted_at`, oldest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("training_runs", sa.Column("worker", sa.String(length=255), nullable=True))
    op.add_column(
        "training_runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("training_runs", sa.Column("retry_of", sa.String(length=64), nullable=True))
    op.add_column("model_versions", sa.Column("load_error", sa.Text(), nullable=True))
    op.create_table(
        "model_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("previous_version", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "action IN ('promote', 'rollback', 'load_failed')",
            name=op.f("ck_model_events_action"),
        ),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_model_events_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_events")),
    )
    op.create_index("ix_model_events_version", "model_events", ["version"], unique=False)
    # Promotions made before this migration, as far as promoted_at still tells them.
    op.execute(
        """
        INSERT INTO model_events (version, action, previous_version, actor, reason, at)
        SELECT version, 'promote', lag(version) OVER (ORDER BY promoted_at, id),
               'migration 0006', 'backfilled from model_versions.promoted_at', promoted_at
        FROM model_versions WHERE promoted_at IS NOT NULL ORDER BY promoted_at, id
        """
    )


def downgrade() -> None:
    op.drop_index("ix_model_events_version", table_name="model_events")
    op.drop_table("model_events")
    op.drop_column("model_versions", "load_error")
    op.drop_column("training_runs", "retry_of")
    op.drop_column("training_runs", "heartbeat_at")
    op.drop_column("training_runs", "worker")

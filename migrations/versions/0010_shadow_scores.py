"""shadow versions: the shadow setting, shadow scores, shadow events in the registry history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:00:00

`crackq models shadow V` makes inference workers also score a sample of live photos with
V. The choice is one row of `model_shadow` (workers poll it, so a restarted worker shadows
again); each answer is a `shadow_scores` row beside the photo's untouched `results` row.
Starting and stopping a shadow are registry events. Both tables are readable by the
reporting role. Downgrade drops the shadow events with the tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
ACTIONS_BEFORE = ("promote", "rollback", "load_failed")
ACTIONS = (*ACTIONS_BEFORE, "shadow_on", "shadow_off")


def _grant(sql: str) -> str:
    return f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN {sql} END IF; END $$;"


def _actions(allowed: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_model_events_action"), "model_events", type_="check")
    op.create_check_constraint(
        op.f("ck_model_events_action"), "model_events", f"action IN {allowed!r}"
    )


def upgrade() -> None:
    op.create_table(
        "model_shadow",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_model_shadow_one_row")),
        sa.CheckConstraint("fraction > 0 AND fraction <= 1", name=op.f("ck_model_shadow_fraction")),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_model_shadow_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_shadow")),
    )
    op.create_table(
        "shadow_scores",
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("crack_probability", sa.Float(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("tiles", sa.Integer(), nullable=True),
        sa.Column("crack_tiles", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("label IN ('crack', 'no_crack')", name=op.f("ck_shadow_scores_label")),
        sa.CheckConstraint("mode IN ('patch', 'map')", name=op.f("ck_shadow_scores_mode")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["results.request_id"],
            name=op.f("fk_shadow_scores_request_id_results"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_shadow_scores_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "version", name=op.f("pk_shadow_scores")),
    )
    op.create_index("ix_shadow_scores_version", "shadow_scores", ["version"], unique=False)
    _actions(ACTIONS)
    op.execute(_grant(f"GRANT SELECT ON model_shadow, shadow_scores TO {ROLE};"))


def downgrade() -> None:
    op.execute(f"DELETE FROM model_events WHERE action NOT IN {ACTIONS_BEFORE!r}")
    _actions(ACTIONS_BEFORE)
    op.drop_index("ix_shadow_scores_version", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    op.drop_table("model_shadow")

"""score history: result_scores (every model version's answer per photo), rescore_jobs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:20:00

`results` keeps a photo's latest score; `result_scores` keeps one row per (request id,
model version) that scored it, live or by `crackq rescore`, written in the same
transaction as the row. The upgrade backfills the history with every succeeded row's
current score (source `live`, scored at its finished_at). `rescore_jobs` records each
re-score's range and cursor, so a killed `crackq rescore` resumes. The history and its
view `crackq_result_scores_v1` are readable by the reporting role. Downgrade drops all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
SCORE_COLUMNS = (
    "label, confidence, crack_probability, mode, tiles, crack_tiles, crack_area_fraction, "
    "crack_regions"
)
SCORES_V1 = """
SELECT s.request_id,
       s.model_version,
       s.source,
       s.scored_at,
       s.label,
       s.confidence,
       s.crack_probability,
       s.mode, s.tiles, s.crack_tiles, s.crack_area_fraction, s.crack_regions,
       s.model_version = r.model_version AS current,
       r.batch_id,
       r.asset_id,
       r.inspection_id
FROM result_scores s
JOIN results r USING (request_id)"""


def _grant(sql: str) -> str:
    return f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN {sql} END IF; END $$;"


def upgrade() -> None:
    op.create_table(
        "result_scores",
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("crack_probability", sa.Float(), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("tiles", sa.Integer(), nullable=True),
        sa.Column("crack_tiles", sa.Integer(), nullable=True),
        sa.Column("crack_area_fraction", sa.Float(), nullable=True),
        sa.Column("crack_regions", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column(
            "scored_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("label IN ('crack', 'no_crack')", name=op.f("ck_result_scores_label")),
        sa.CheckConstraint("source IN ('live', 'rescore')", name=op.f("ck_result_scores_source")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["results.request_id"],
            name=op.f("fk_result_scores_request_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "model_version", name=op.f("pk_result_scores")),
    )
    op.create_index(
        "ix_result_scores_model_version", "result_scores", ["model_version"], unique=False
    )
    op.create_table(
        "rescore_jobs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done')", name=op.f("ck_rescore_jobs_status")),
        sa.ForeignKeyConstraint(
            ["model_version"],
            ["model_versions.version"],
            name=op.f("fk_rescore_jobs_model_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rescore_jobs")),
    )
    op.create_index(
        "uq_rescore_jobs_running_key",
        "rescore_jobs",
        ["key"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.execute(
        f"INSERT INTO result_scores (request_id, model_version, {SCORE_COLUMNS}, source, "
        f"scored_at) SELECT request_id, model_version, {SCORE_COLUMNS}, 'live', "
        "COALESCE(finished_at, updated_at) FROM results "
        "WHERE status = 'succeeded' AND label IS NOT NULL AND model_version IS NOT NULL"
    )
    op.execute(f"CREATE VIEW crackq_result_scores_v1 AS {SCORES_V1}")
    op.execute(_grant(f"GRANT SELECT ON result_scores, crackq_result_scores_v1 TO {ROLE};"))


def downgrade() -> None:
    op.execute("DROP VIEW crackq_result_scores_v1")
    op.drop_index("uq_rescore_jobs_running_key", table_name="rescore_jobs")
    op.drop_table("rescore_jobs")
    op.drop_index("ix_result_scores_model_version", table_name="result_scores")
    op.drop_table("result_scores")

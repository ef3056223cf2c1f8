"""artifact store: checkpoints and run reports as chunked bytea; a run's artifact URLs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00

`CRACKQ_ARTIFACT_STORE=postgres` (the default) keeps checkpoints and run reports in the
database, one `artifact_chunks` row per chunk, so workers on other machines need no shared
disk. New tables only, plus `training_runs.artifacts` (empty for existing runs): nothing
is moved, and `model_versions.checkpoint_uri` values that are local paths keep working.
Chunks are stored EXTERNAL (out of line, uncompressed): model weights do not compress,
and pglz would try on every chunk.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "artifact_chunks",
        sa.Column("artifact_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_chunks_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "seq", name=op.f("pk_artifact_chunks")),
    )
    op.execute("ALTER TABLE artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    op.add_column(
        "training_runs",
        sa.Column(
            "artifacts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("training_runs", "artifacts")
    op.drop_table("artifact_chunks")
    op.drop_table("artifacts")

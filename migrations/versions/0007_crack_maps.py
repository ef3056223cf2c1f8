"""crack maps: per-tile probabilities and regions of big photos; map columns on results

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 04:00:00

Photos much larger than the model's patch are mapped tile by tile. Their row keeps its
meaning (label, confidence, crack_probability) and gains, additively in the public view,
the mode and the map's summary; the map itself and its regions get their own tables,
readable by the reporting role.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
MAP_COLUMNS = ("mode", "tiles", "crack_tiles", "crack_area_fraction", "crack_regions")

VIEW_V1_COLUMNS = """
    request_id,
    batch_id,
    image_ref,
    status,
    label,
    confidence,
    crack_probability,
    model_version,
    error_code,
    error_message,
    worker_host,
    submitted_at,
    finished_at,
    EXTRACT(EPOCH FROM (finished_at - submitted_at)) * 1000.0 AS latency_ms,
    created_at"""


def _grant(sql: str) -> str:
    return f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN {sql} END IF; END $$;"


def upgrade() -> None:
    op.add_column("results", sa.Column("mode", sa.String(length=8), nullable=True))
    op.add_column("results", sa.Column("tiles", sa.Integer(), nullable=True))
    op.add_column("results", sa.Column("crack_tiles", sa.Integer(), nullable=True))
    op.add_column("results", sa.Column("crack_area_fraction", sa.Float(), nullable=True))
    op.add_column("results", sa.Column("crack_regions", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_results_mode"), "results", "mode IS NULL OR mode IN ('patch', 'map')"
    )
    op.create_table(
        "crack_maps",
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("tile", sa.Integer(), nullable=False),
        sa.Column("stride", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("cols", sa.Integer(), nullable=False),
        sa.Column("probabilities", postgresql.ARRAY(postgresql.REAL()), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["results.request_id"],
            name=op.f("fk_crack_maps_request_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_crack_maps")),
    )
    op.create_table(
        "crack_regions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("region", sa.Integer(), nullable=False),
        sa.Column("x0", sa.Integer(), nullable=False),
        sa.Column("y0", sa.Integer(), nullable=False),
        sa.Column("x1", sa.Integer(), nullable=False),
        sa.Column("y1", sa.Integer(), nullable=False),
        sa.Column("tiles", sa.Integer(), nullable=False),
        sa.Column("max_probability", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["results.request_id"],
            name=op.f("fk_crack_regions_request_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crack_regions")),
    )
    op.create_index("ix_crack_regions_request_id", "crack_regions", ["request_id"], unique=False)
    # Columns are only ever appended to the public view (CREATE OR REPLACE keeps its grants).
    op.execute(
        f"CREATE OR REPLACE VIEW crackq_results_v1 AS SELECT {VIEW_V1_COLUMNS}, "
        f"{', '.join(MAP_COLUMNS)} FROM results"
    )
    op.execute(_grant(f"GRANT SELECT ON crack_maps, crack_regions TO {ROLE};"))


def downgrade() -> None:
    op.execute("DROP VIEW crackq_results_v1")
    op.execute(f"CREATE VIEW crackq_results_v1 AS SELECT {VIEW_V1_COLUMNS} FROM results")
    op.execute(_grant(f"GRANT SELECT ON crackq_results_v1 TO {ROLE};"))
    op.drop_index("ix_crack_regions_request_id", table_name="crack_regions")
    op.drop_table("crack_regions")
    op.drop_table("crack_maps")
    op.drop_constraint(op.f("ck_results_mode"), "results", type_="check")
    for column in reversed(MAP_COLUMNS):
        op.drop_column("results", column)

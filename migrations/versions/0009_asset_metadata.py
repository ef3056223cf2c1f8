"""asset metadata on results; the per-asset reporting view crackq_assets_v1

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:30:00

Producers may tag a photo with the asset it shows, the inspection it belongs to, when it
was captured and a small free-form metadata object. The columns are nullable (old rows and
untagged photos keep NULL) and appended to the public view `crackq_results_v1`.
`crackq_assets_v1` is one row per asset: its latest inspection, the one before, when a
crack was first seen and a trend; reporting tools read it like the results view.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
ASSET_COLUMNS = ("asset_id", "inspection_id", "captured_at", "metadata")

# crackq_results_v1 as 0007 left it; downgrade restores exactly this.
VIEW_V1_0007 = """
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
    created_at,
    mode, tiles, crack_tiles, crack_area_fraction, crack_regions"""

# An inspection is an (asset, inspection_id) pair; a photo without an inspection_id is an
# inspection of its own. Only classified photos (status 'succeeded') say anything about the
# asset's state; an inspection is 'crack' when any of its photos is. Inspections are
# ordered by their earliest photo's time, COALESCE(captured_at, submitted_at, created_at).
ASSETS_V1 = """
WITH photos AS NOT MATERIALIZED (
    SELECT asset_id,
           inspection_id,
           CASE WHEN inspection_id IS NULL THEN request_id END AS lone_request_id,
           COALESCE(captured_at, submitted_at, created_at) AS seen_at,
           request_id, status, label, crack_probability, crack_area_fraction
    FROM results
    WHERE asset_id IS NOT NULL
),
inspections AS (
    SELECT asset_id,
           inspection_id,
           lone_request_id,
           min(seen_at) AS inspected_at,
           count(*) AS photos,
           bool_or(label = 'crack') AS crack,
           max(crack_probability) AS crack_probability,
           max(crack_area_fraction) AS crack_area_fraction,
           (array_agg(request_id ORDER BY crack_probability DESC NULLS LAST, request_id))[1]
               AS request_id
    FROM photos
    WHERE status = 'succeeded'
    GROUP BY asset_id, inspection_id, lone_request_id
),
ordered AS (
    SELECT i.*,
           row_number() OVER recent AS recency,
           count(*) OVER (PARTITION BY asset_id) AS inspections,
           lead(inspection_id) OVER recent AS previous_inspection_id,
           lead(inspected_at) OVER recent AS previous_inspected_at,
           lead(crack) OVER recent AS previous_crack,
           lead(crack_area_fraction) OVER recent AS previous_crack_area_fraction
    FROM inspections i
    WINDOW recent AS (
        PARTITION BY asset_id ORDER BY inspected_at DESC, inspection_id DESC, lone_request_id DESC
    )
),
assets AS (
    SELECT asset_id,
           count(*) AS photos,
           count(*) FILTER (WHERE status = 'queued') AS queued_photos,
           count(*) FILTER (WHERE status = 'failed') AS failed_photos,
           min(seen_at) AS first_seen_at,
           min(seen_at) FILTER (WHERE status = 'succeeded' AND label = 'crack')
               AS first_crack_seen_at
    FROM photos
    GROUP BY asset_id
)
SELECT a.asset_id,
       COALESCE(o.inspections, 0) AS inspections,
       a.photos,
       a.queued_photos,
       a.failed_photos,
       a.first_seen_at,
       o.inspection_id AS latest_inspection_id,
       o.inspected_at AS latest_inspected_at,
       o.request_id AS latest_request_id,
       CASE WHEN o.crack THEN 'crack' WHEN NOT o.crack THEN 'no_crack' END AS latest_label,
       o.crack_probability AS latest_crack_probability,
       o.crack_area_fraction AS latest_crack_area_fraction,
       o.photos AS latest_photos,
       a.first_crack_seen_at,
       o.previous_inspection_id,
       o.previous_inspected_at,
       CASE WHEN o.previous_crack THEN 'crack' WHEN NOT o.previous_crack THEN 'no_crack' END
           AS previous_label,
       o.previous_crack_area_fraction,
       COALESCE(o.crack AND NOT o.previous_crack, false) AS new_crack,
       CASE
           WHEN o.previous_crack IS NULL THEN NULL
           WHEN o.crack AND NOT o.previous_crack THEN 'new_crack'
           WHEN o.crack AND o.crack_area_fraction > o.previous_crack_area_fraction
               THEN 'growing'
           WHEN o.crack THEN 'crack'
           WHEN o.previous_crack THEN 'cleared'
           ELSE 'no_crack'
       END AS trend
FROM assets a
LEFT JOIN ordered o ON o.asset_id = a.asset_id AND o.recency = 1"""


def _grant(sql: str) -> str:
    return f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN {sql} END IF; END $$;"


def upgrade() -> None:
    op.add_column("results", sa.Column("asset_id", sa.String(length=200), nullable=True))
    op.add_column("results", sa.Column("inspection_id", sa.String(length=200), nullable=True))
    op.add_column("results", sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "results",
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_index(
        "ix_results_asset_id_captured_at", "results", ["asset_id", "captured_at"], unique=False
    )
    op.create_index("ix_results_inspection_id", "results", ["inspection_id"], unique=False)
    # Columns are only ever appended to the public view (CREATE OR REPLACE keeps its grants).
    op.execute(
        f"CREATE OR REPLACE VIEW crackq_results_v1 AS SELECT {VIEW_V1_0007}, "
        f"{', '.join(ASSET_COLUMNS)} FROM results"
    )
    op.execute(f"CREATE VIEW crackq_assets_v1 AS {ASSETS_V1}")
    op.execute(_grant(f"GRANT SELECT ON crackq_assets_v1 TO {ROLE};"))


def downgrade() -> None:
    op.execute("DROP VIEW crackq_assets_v1")
    op.execute("DROP VIEW crackq_results_v1")
    op.execute(f"CREATE VIEW crackq_results_v1 AS SELECT {VIEW_V1_0007} FROM results")
    op.execute(_grant(f"GRANT SELECT ON crackq_results_v1 TO {ROLE};"))
    op.drop_index("ix_results_inspection_id", table_name="results")
    op.drop_index("ix_results_asset_id_captured_at", table_name="results")
    for column in reversed(ASSET_COLUMNS):
        op.drop_column("results", column)

"""index results.finished_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 07:40:00

`crackq status` counts rows finished in the last minute, and reports ask for results by
completion time; without this index both scan the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_results_finished_at", "results", ["finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_results_finished_at", table_name="results")

"""read-only reporting role

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 07:05:00

Reporting tools read the results; they must not be able to change them or see anything
else (dead letters hold raw payloads, training runs hold paths). `crackq_reporting` is a
NOLOGIN group role: an operator grants it to a login role of their own, e.g.
`CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE crackq_reporting;`.

Roles belong to the whole PostgreSQL cluster, not to one database, so the role is
created only when missing and downgrade revokes this database's grants but leaves the
role (another crackq database on the same server may still grant through it). When the
migrating user may not create roles, the step logs a NOTICE and grants nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLE = "crackq_reporting"
READABLE = ("results", "model_versions", "crackq_results_v1")


def upgrade() -> None:
    grants = " ".join(f"GRANT SELECT ON {name} TO {ROLE};" for name in READABLE)
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                IF (SELECT rolsuper OR rolcreaterole FROM pg_roles
                    WHERE rolname = current_user) THEN
                    CREATE ROLE {ROLE} NOLOGIN;
                ELSE
                    RAISE NOTICE 'role {ROLE} not created: % may not create roles',
                        current_user;
                    RETURN;
                END IF;
            END IF;
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
            GRANT USAGE ON SCHEMA public TO {ROLE};
            {grants}
        END
        $$;
        """
    )


def downgrade() -> None:
    revokes = " ".join(f"REVOKE ALL ON {name} FROM {ROLE};" for name in READABLE)
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                {revokes}
                REVOKE USAGE ON SCHEMA public FROM {ROLE};
                EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database());
            END IF;
        END
        $$;
        """
    )

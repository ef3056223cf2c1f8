"""The model registry: versions, their checkpoints and which one is promoted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.tables import ModelVersion


class RegistryError(LookupError):
    """A version that does not exist or cannot take the asked-for status."""


def register(session: Session, **fields: Any) -> ModelVersion:
    """Insert a version, or return the existing row of that version name unchanged."""
    stmt = (
        insert(ModelVersion)
        .values(**fields)
        .on_conflict_do_nothing(index_elements=[ModelVersion.version])
    )
    session.execute(stmt)
    return get(session, fields["version"])


def get(session: Session, version: str) -> ModelVersion:
    """One version by name; RegistryError if unknown."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise RegistryError(f"unknown model version {version!r}")
    return row


def promoted(session: Session) -> ModelVersion | None:
    """The promoted version, or None when nothing has been promoted yet."""
    return session.scalar(select(ModelVersion).where(ModelVersion.status == "promoted"))


def list_versions(session: Session) -> Sequence[ModelVersion]:
    """All versions, newest first."""
    return session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())).all()


def promote(session: Session, version: str) -> ModelVersion:
    """Make `version` the promoted one; the previously promoted one is retired."""
    row = get(session, version)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == "promoted", ModelVersion.version != version)
        .values(status="retired")
    )
    session.flush()
    row.status = "promoted"
    row.promoted_at = session.scalar(select(func.clock_timestamp()))
    session.flush()
    return row


def rollback(session: Session) -> ModelVersion:
    """Re-promote the version promoted before the current one."""
    current = promoted(session)
    stmt = select(ModelVersion).where(
        ModelVersion.promoted_at.is_not(None), ModelVersion.status != "promoted"
    )
    if current is not None and current.promoted_at is not None:
        stmt = stmt.where(ModelVersion.promoted_at < current.promoted_at)
    previous = session.scalar(stmt.order_by(ModelVersion.promoted_at.desc()).limit(1))
    if previous is None:
        raise RegistryError("no earlier promoted version to roll back to")
    return promote(session, previous.version)

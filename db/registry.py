"""The model registry: versions, their checkpoints, which one is promoted, and its history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.tables import ModelEvent, ModelVersion


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


def promote(
    session: Session,
    version: str,
    by: str = "unknown",
    reason: str | None = None,
    action: str = "promote",
) -> ModelVersion:
    """Make `version` the promoted one (the previous one is retired) and record the event."""
    row = get(session, version)
    previous = promoted(session)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == "promoted", ModelVersion.version != version)
        .values(status="retired")
    )
    session.flush()
    row.status = "promoted"
    row.promoted_at = session.scalar(select(func.clock_timestamp()))
    session.add(
        ModelEvent(
            version=version,
            action=action,
            previous_version=previous.version if previous else None,
            actor=by[:200],
            reason=reason,
        )
    )
    session.flush()
    return row


def promotion_stack(session: Session) -> list[str]:
    """The promotions still standing, oldest first: the history with rollbacks undone.

    A promotion pushes its version; a rollback to V pops every version above V.
    """
    stack: list[str] = []
    events = session.execute(
        select(ModelEvent.action, ModelEvent.version)
        .where(ModelEvent.action.in_(("promote", "rollback")))
        .order_by(ModelEvent.id)
    )
    for action, version in events:
        if action == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
        if not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback(session: Session, by: str = "unknown", reason: str | None = None) -> ModelVersion:
    """Re-promote the version promoted before the current one's promotion.

    Walks back through the history: versions already rolled away from are skipped, so
    each rollback goes one promotion further back (A, B, C promoted: C -> B -> A).
    """
    current = promoted(session)
    stack = promotion_stack(session)
    while stack and current is not None and stack[-1] == current.version:
        stack.pop()
    if not stack:
        raise RegistryError("no earlier promoted version to roll back to")
    return promote(session, stack[-1], by=by, reason=reason, action="rollback")


def record_load_error(session: Session, version: str, worker: str, error: str) -> None:
    """A worker could not load `version`: an event, and the row's first load error."""
    session.add(ModelEvent(version=version, action="load_failed", actor=worker[:200], reason=error))
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.version == version, ModelVersion.load_error.is_(None))
        .values(load_error=error)
    )


def history(session: Session, limit: int = 100) -> Sequence[ModelEvent]:
    """The newest `limit` registry events, newest first."""
    return session.scalars(select(ModelEvent).order_by(ModelEvent.id.desc()).limit(limit)).all()

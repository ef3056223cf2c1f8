"""Dead letters: refused messages with their reason, listed and replayed by operators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.tables import DeadLetter


def add(
    session: Session,
    *,
    task_id: str | None,
    task_name: str | None,
    reason: str,
    payload: dict[str, Any],
) -> None:
    session.add(
        DeadLetter(task_id=task_id, task_name=task_name, reason=reason[:4000], payload=payload)
    )


def list_letters(
    session: Session, include_replayed: bool = False, limit: int = 100
) -> Sequence[DeadLetter]:
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if not include_replayed:
        stmt = stmt.where(DeadLetter.replayed_at.is_(None))
    return session.scalars(stmt).all()


def get(session: Session, letter_id: int) -> DeadLetter:
    row = session.get(DeadLetter, letter_id)
    if row is None:
        raise LookupError(f"no dead letter {letter_id}")
    return row


def mark_replayed(session: Session, letter_id: int) -> None:
    session.execute(
        update(DeadLetter).where(DeadLetter.id == letter_id).values(replayed_at=func.now())
    )


def waiting_count(session: Session) -> int:
    """Dead letters not replayed yet."""
    stmt = select(func.count()).where(DeadLetter.replayed_at.is_(None))
    return int(session.scalar(stmt) or 0)

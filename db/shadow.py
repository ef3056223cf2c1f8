"""Shadow versions: which one scores live photos, its scores, and how they compare with live."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db import registry
from db.tables import Label, ModelEvent, Result, ShadowScore, ShadowSetting

SCORE_COLUMNS = ("request_id", "version", "label", "crack_probability", "mode")


def active(session: Session) -> ShadowSetting | None:
    """The shadow setting, or None when no version is shadowed."""
    return session.get(ShadowSetting, 1)


def start(
    session: Session, version: str, fraction: float, by: str, reason: str | None = None
) -> ShadowSetting:
    """Shadow `version` on `fraction` of live photos (replacing any other); an event."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    registry.get(session, version)  # RegistryError if unknown
    previous = active(session)
    values = {"version": version, "fraction": fraction, "started_by": by[:200]}
    session.execute(
        insert(ShadowSetting)
        .values(id=1, **values)
        .on_conflict_do_update(
            index_elements=[ShadowSetting.id], set_={**values, "started_at": func.now()}
        )
    )
    session.add(
        ModelEvent(
            version=version,
            action="shadow_on",
            previous_version=previous.version if previous else None,
            actor=by[:200],
            reason=reason or f"fraction {fraction:g}",
        )
    )
    session.flush()
    session.expire_all()
    found = active(session)
    assert found is not None
    return found


def stop(session: Session, by: str, reason: str | None = None) -> str | None:
    """Stop shadowing; the version that was shadowed (an event), or None if none was."""
    current = active(session)
    if current is None:
        return None
    version = current.version
    session.execute(delete(ShadowSetting).where(ShadowSetting.id == 1))
    session.add(ModelEvent(version=version, action="shadow_off", actor=by[:200], reason=reason))
    session.flush()
    return version


def write_scores(session: Session, scores: Sequence[dict[str, Any]]) -> int:
    """Store shadow scores; a photo already scored by that version keeps its first score.

    Each is {request_id, version, label, crack_probability, mode[, tiles, crack_tiles]}.
    """
    if not scores:
        return 0
    rows = [{**{k: s[k] for k in SCORE_COLUMNS}, **_map_fields(s)} for s in scores]
    stmt = insert(ShadowScore).values(rows).on_conflict_do_nothing()
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def _map_fields(score: dict[str, Any]) -> dict[str, Any]:
    return {"tiles": score.get("tiles"), "crack_tiles": score.get("crack_tiles")}


@dataclass(frozen=True)
class ShadowCounts:
    """Shadow answers against the live rows of the same photos (succeeded rows only)."""

    version: str
    shadowed: int = 0
    agree: int = 0
    to_crack: int = 0  # live no_crack, shadow crack
    to_no_crack: int = 0  # live crack, shadow no_crack
    live_crack: int = 0
    shadow_crack: int = 0
    labelled: int = 0  # of the shadowed photos, those an operator labelled
    live_correct: int = 0
    shadow_correct: int = 0
    mean_abs_dp: float | None = None  # mean |crack_probability change|
    live_versions: dict[str, int] = field(default_factory=dict)


def counts(session: Session, version: str) -> ShadowCounts:
    """How `version`'s shadow scores compare with the live rows, in one aggregate query."""
    live, shadow, truth = Result.label, ShadowScore.label, Label.label

    def n(*where: Any) -> Any:
        return func.count().filter(and_(*where)) if where else func.count()

    joined = (
        select(ShadowScore)
        .join(Result, Result.request_id == ShadowScore.request_id)
        .outerjoin(Label, Label.request_id == ShadowScore.request_id)
        .where(ShadowScore.version == version, Result.status == "succeeded")
    )
    agg = joined.with_only_columns(
        n(),
        n(live == shadow),
        n(live == "no_crack", shadow == "crack"),
        n(live == "crack", shadow == "no_crack"),
        n(live == "crack"),
        n(shadow == "crack"),
        n(truth.is_not(None)),
        n(truth == live),
        n(truth == shadow),
        func.avg(func.abs(ShadowScore.crack_probability - Result.crack_probability)),
    )
    row = session.execute(agg).one()
    by_version = session.execute(
        joined.with_only_columns(Result.model_version, func.count()).group_by(Result.model_version)
    ).all()
    names = (
        *("shadowed", "agree", "to_crack", "to_no_crack", "live_crack", "shadow_crack"),
        *("labelled", "live_correct", "shadow_correct"),
    )
    return ShadowCounts(
        version=version,
        **{name: int(x) for name, x in zip(names, row[:9], strict=True)},
        mean_abs_dp=None if row[9] is None else float(row[9]),
        live_versions={str(v): int(c) for v, c in by_version},
    )


def flips(session: Session, version: str, to: str, limit: int) -> list[str]:
    """Request ids (oldest first, at most `limit`) whose shadow label is `to` and live's not."""
    found = session.scalars(
        select(ShadowScore.request_id)
        .join(Result, Result.request_id == ShadowScore.request_id)
        .where(
            ShadowScore.version == version,
            Result.status == "succeeded",
            ShadowScore.label == to,
            Result.label != to,
        )
        .order_by(ShadowScore.created_at, ShadowScore.request_id)
        .limit(limit)
    )
    return list(found)

"""Promotion gates: a run's score against the promoted model, and shadowed traffic's figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db import registry, shadow
from db.tables import ModelVersion
from worker.settings import Settings
from worker.shadowreport import flip_rate

TOLERANCE = 1e-9  # AUCs of the same photos that differ in float rounding only are equal


@dataclass(frozen=True)
class ScoreGate:
    """When a finished run beats the promoted model, both scored on the run's validation
    photos (CRACKQ_PROMOTE_AUC_MARGIN, CRACKQ_PROMOTE_MAX_GROUP_DROP)."""

    auc_margin: float = 0.0
    max_group_drop: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoreGate:
        return cls(settings.promote_auc_margin, settings.promote_max_group_drop)

    def refusals(self, new: dict[str, Any], old: dict[str, Any]) -> list[str]:
        """Why `new` (a run's metrics) does not beat `old` (the parent's); [] when it does.

        AUC is compared, or accuracy when either AUC is undefined (one class only):
        new >= old + auc_margin. The worst group is compared only when both carry
        per-group figures and max_group_drop is set.
        """
        key = "auc" if new.get("auc") is not None and old.get("auc") is not None else "accuracy"
        mine, theirs = new.get(key) or 0.0, old.get(key) or 0.0
        failed = []
        if mine + TOLERANCE < theirs + self.auc_margin:
            failed.append(
                f"{key} {mine:.4f} below the promoted model's {theirs:.4f} + margin "
                f"{self.auc_margin:g} (CRACKQ_PROMOTE_AUC_MARGIN)"
            )
        mine_g, theirs_g = new.get("groups"), old.get("groups")
        if self.max_group_drop is not None and mine_g and theirs_g:
            worst, was = mine_g["worst_accuracy"], theirs_g["worst_accuracy"]
            if worst + TOLERANCE < was - self.max_group_drop:
                group = mine_g["worst"][0]["group"] if mine_g.get("worst") else "?"
                failed.append(
                    f"worst group accuracy {worst:.4f} ({group}) more than "
                    f"{self.max_group_drop:g} below the promoted model's {was:.4f} "
                    "(CRACKQ_PROMOTE_MAX_GROUP_DROP)"
                )
        return failed


class GateRefused(ValueError):
    """A promotion that failed its gates; the message names each failed gate's figures."""


@dataclass(frozen=True)
class Gates:
    """What a promotion requires (CRACKQ_PROMOTE_*); the defaults require nothing."""

    min_shadowed: int = 0
    max_flip_rate: float | None = None
    labelled_accuracy: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Gates:
        return cls(
            settings.promote_min_shadowed,
            settings.promote_max_flip_rate,
            settings.promote_require_labelled_accuracy,
        )

    @property
    def active(self) -> bool:
        return bool(self.min_shadowed or self.max_flip_rate is not None or self.labelled_accuracy)


def check(session: Session, version: str, gates: Gates) -> list[str]:
    """The failed gates of promoting `version`, each with its figures; [] when it may.

    Gates measure a version against the promoted one, so they pass when nothing is
    promoted yet (the first model) and when `version` is the promoted one.
    """
    current = registry.promoted(session)
    if not gates.active or current is None or current.version == version:
        return []
    c = shadow.counts(session, version)
    failed = []
    if c.shadowed < gates.min_shadowed:
        failed.append(
            f"{c.shadowed} shadowed photos, at least {gates.min_shadowed} required "
            "(CRACKQ_PROMOTE_MIN_SHADOWED)"
        )
    rate = flip_rate(c)
    if gates.max_flip_rate is not None:
        if rate is None:
            failed.append("no shadowed photos to measure a flip rate on")
        elif rate > gates.max_flip_rate:
            failed.append(
                f"flip rate {rate:.4f} ({c.to_crack + c.to_no_crack} of {c.shadowed}) above "
                f"{gates.max_flip_rate:g} (CRACKQ_PROMOTE_MAX_FLIP_RATE)"
            )
    if gates.labelled_accuracy:
        if c.labelled == 0:
            failed.append("no labelled shadowed photos to compare accuracy on (crackq label)")
        elif c.shadow_correct < c.live_correct:
            failed.append(
                f"accuracy on {c.labelled} labelled photos {c.shadow_correct / c.labelled:.4f} "
                f"below live {c.live_correct / c.labelled:.4f} "
                "(CRACKQ_PROMOTE_REQUIRE_LABELLED_ACCURACY)"
            )
    return failed


def promote(
    session: Session,
    version: str,
    gates: Gates,
    by: str,
    reason: str | None = None,
    force: bool = False,
) -> ModelVersion:
    """Promote `version` if it passes its gates; GateRefused (with the figures) if not.

    `force` promotes past failed gates, and needs a reason; the history then records
    the failed figures with it. Promoting the shadowed version stops its shadow.
    """
    if force and not reason:
        raise ValueError("--force needs --reason: why promote past the gates")
    failed = check(session, version, gates)
    if failed and not force:
        raise GateRefused(
            f"promoting {version} refused by its gates: {'; '.join(failed)}. "
            f"See `crackq models compare {version}`; --force --reason R overrides."
        )
    if failed:
        reason = f"FORCED past promotion gates ({'; '.join(failed)}): {reason}"
    row = registry.promote(session, version, by=by, reason=reason)
    setting = shadow.active(session)
    if setting is not None and setting.version == version:
        shadow.stop(session, by, reason="promoted")
    return row

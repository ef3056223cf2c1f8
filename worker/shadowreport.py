"""`crackq models compare V`: a shadow version's answers against the live ones, as figures."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db import shadow
from db.shadow import ShadowCounts


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def _change(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 6)


def compare(session: Session, version: str, flip_ids: int = 50) -> dict[str, Any]:
    """The comparison report of `version`'s shadowed traffic (JSON-ready).

    Against the live row of each shadowed photo: agreement, flips each way with up to
    `flip_ids` request ids each, crack rates and their change, and accuracy on the
    photos an operator labelled (`crackq label`), live and shadow on the same photos.
    """
    c = shadow.counts(session, version)
    setting = shadow.active(session)
    live_rate, shadow_rate = _ratio(c.live_crack, c.shadowed), _ratio(c.shadow_crack, c.shadowed)
    live_acc, shadow_acc = _ratio(c.live_correct, c.labelled), _ratio(c.shadow_correct, c.labelled)
    return {
        "version": version,
        "shadowing": setting is not None and setting.version == version,
        "fraction": setting.fraction
        if setting is not None and setting.version == version
        else None,
        "shadowed": c.shadowed,
        "live_versions": c.live_versions,
        "agreement": _ratio(c.agree, c.shadowed),
        "flip_rate": flip_rate(c),
        "flips": {
            to: {"count": n, "request_ids": shadow.flips(session, version, label, flip_ids)}
            for to, n, label in (
                ("to_crack", c.to_crack, "crack"),
                ("to_no_crack", c.to_no_crack, "no_crack"),
            )
        },
        "crack_rate": {
            "live": live_rate,
            "shadow": shadow_rate,
            "change": _change(shadow_rate, live_rate),
        },
        "mean_abs_probability_change": (None if c.mean_abs_dp is None else round(c.mean_abs_dp, 6)),
        "labelled": {
            "rows": c.labelled,
            "live_correct": c.live_correct,
            "shadow_correct": c.shadow_correct,
            "live_accuracy": live_acc,
            "shadow_accuracy": shadow_acc,
            "change": _change(shadow_acc, live_acc),
        },
    }


def flip_rate(c: ShadowCounts) -> float | None:
    """Share of shadowed photos whose label the shadow version would change."""
    return _ratio(c.to_crack + c.to_no_crack, c.shadowed)


def render(report: dict[str, Any]) -> str:
    """The report for people: a few aligned lines, flips' request ids at the end."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}%"

    lab, rate = report["labelled"], report["crack_rate"]
    live = ", ".join(f"{v} ({n})" for v, n in report["live_versions"].items()) or "-"
    state = (
        f"shadowing {report['fraction']:g} of live photos"
        if report["shadowing"]
        else "not shadowing now"
    )
    lines = [
        f"shadow {report['version']}: {report['shadowed']} shadowed photos ({state})",
        f"  live answers from   {live}",
        f"  agreement           {pct(report['agreement'])}",
        f"  flip rate           {pct(report['flip_rate'])}  "
        f"(no_crack -> crack {report['flips']['to_crack']['count']}, "
        f"crack -> no_crack {report['flips']['to_no_crack']['count']})",
        f"  crack rate          live {pct(rate['live'])}, shadow {pct(rate['shadow'])}, "
        f"change {pct(rate['change'])}",
        f"  labelled photos     {lab['rows']}: accuracy live {pct(lab['live_accuracy'])}, "
        f"shadow {pct(lab['shadow_accuracy'])}, change {pct(lab['change'])}",
    ]
    for to, title in (("to_crack", "no_crack -> crack"), ("to_no_crack", "crack -> no_crack")):
        flipped = report["flips"][to]
        if flipped["count"]:
            more = flipped["count"] - len(flipped["request_ids"])
            tail = f" (+{more} more)" if more > 0 else ""
            lines.append(f"  {title}: {' '.join(flipped['request_ids'])}{tail}")
    return "\n".join(lines)

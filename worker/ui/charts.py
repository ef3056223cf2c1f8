"""An asset's inspections as an inline SVG chart: crack area fraction over time, one dot each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
CRACK, CLEAR, UNKNOWN = "#c0392b", "#2e7d32", "#9e9e9e"


def area_chart(inspections: Sequence[dict[str, Any]]) -> str:
    """SVG markup: each inspection's largest crack area fraction (0 when none was mapped)
    at its time, red where it was a crack, green where not; grey while unclassified."""
    points = [i for i in inspections if isinstance(i.get("inspected_at"), dt.datetime)]
    if not points:
        return '<p class="muted">No dated inspections to chart yet.</p>'
    times = [p["inspected_at"].timestamp() for p in points]
    values = [float(p.get("crack_area_fraction") or 0.0) for p in points]
    t0, t1 = min(times), max(times)
    top = max(0.05, max(values) * 1.15)  # never flatter than a 5 % scale
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (plot_w / 2 if t1 == t0 else (t - t0) / (t1 - t0) * plot_w)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="crack area fraction per inspection">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#888"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{v:.1%}</text>"
        )
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}"
        for i, (t, v) in enumerate(zip(times, values, strict=True))
    )
    parts.append(f'<path d="{path}" fill="none" stroke="#555" stroke-width="1.5"/>')
    for p, t, v in zip(points, times, values, strict=True):
        colour = {"crack": CRACK, "no_crack": CLEAR}.get(p.get("label") or "", UNKNOWN)
        name = escape(str(p.get("inspection_id") or p.get("first_request_id") or ""))
        when = p["inspected_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d")
        parts.append(
            f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="5" fill="{colour}">'
            f"<title>{name}: {when}, {p.get('label') or 'not classified'}, "
            f"area {v:.2%}</title></circle>"
        )
    first, last = points[0]["inspected_at"], points[-1]["inspected_at"]
    ends = [(t0, first, "start")] + ([(t1, last, "end")] if t1 > t0 else [])
    for t, stamp, anchor in ends:
        parts.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 14}" text-anchor="{anchor}" font-size="11">'
            f"{stamp.astimezone(dt.timezone.utc):%Y-%m-%d}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

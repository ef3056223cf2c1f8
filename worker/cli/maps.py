"""`crackq map REQUEST_ID [--format json|text] [-o overlay.png]`: a photo's stored crack map."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.maps import read_map
from db.tables import Result
from worker.cli.output import sessions, to_json
from worker.errors import ImageError
from worker.overlay import read_overlay
from worker.settings import get_settings
from worker.sources import SourceLimits

GRID_MAX = (60, 100)  # rows, cols: larger maps get no ASCII grid in the text format
REGIONS_SHOWN = 20


def run_map(args: argparse.Namespace) -> int:
    with sessions()() as session:
        stored = read_map(session, args.request_id)
        if stored is None:
            row = session.scalars(
                select(Result).where(Result.request_id == args.request_id)
            ).first()
            print(f"crackq map: {_no_map(args.request_id, row)}", file=sys.stderr)
            return 1
    if args.output is not None and args.max_side < 1:
        raise ValueError(f"--max-side must be >= 1, got {args.max_side}")
    print(to_json(as_json(stored), indent=2) if args.format == "json" else as_text(stored))
    if args.output is not None:
        return write_overlay(stored, args.output, args.max_side)
    return 0


def _no_map(request_id: str, row: Result | None) -> str:
    if row is None:
        return f"no result with request id {request_id!r}"
    if row.status == "queued":
        return f"{request_id} is still queued: its map is not made yet"
    if row.status == "failed":
        return f"{request_id} failed ({row.error_code}): it has no map"
    return (
        f"{request_id} was classified whole ({row.label}), not mapped, so it has no map; "
        "submit the photo again with `--mode map` to map it"
    )


def as_json(stored: dict[str, Any]) -> dict[str, Any]:
    """The map as `--format json` prints it: read_map's fields, regions with a "box"."""
    keys = ("request_id", "width", "height", "tile", "stride", "rows", "cols", "probabilities")
    return {
        **{k: stored[k] for k in keys},
        "regions": [
            {
                "box": [r["x0"], r["y0"], r["x1"], r["y1"]],
                "tiles": r["tiles"],
                "max_probability": r["max_probability"],
            }
            for r in stored["regions"]
        ],
        "label": stored["label"],
        "crack_probability": stored["crack_probability"],
    }


def as_text(stored: dict[str, Any]) -> str:
    """A short summary for people: size, tiles, crack tiles, regions, verdict, small grid."""
    rows, cols = stored["rows"], stored["cols"]
    probs = [p for row in stored["probabilities"] for p in row]
    crack = sum(p >= 0.5 for p in probs)
    p = stored["crack_probability"]
    lines = [
        f"request     {stored['request_id']}  (model {stored['model_version'] or '-'})",
        f"photo       {stored['image_ref']}",
        f"size        {stored['width']} x {stored['height']} px",
        f"tiles       {rows} x {cols} = {rows * cols}, {stored['tile']} px every "
        f"{stored['stride']} px",
        f"crack tiles {crack} ({crack / max(1, len(probs)):.1%})",
        f"regions     {len(stored['regions'])}",
    ]
    for i, r in enumerate(stored["regions"][:REGIONS_SHOWN]):
        lines.append(
            f"  #{i}  box ({r['x0']}, {r['y0']})-({r['x1']}, {r['y1']})  "
            f"{r['tiles']} tiles  max {r['max_probability']:.3f}"
        )
    if len(stored["regions"]) > REGIONS_SHOWN:
        lines.append(f"  ... {len(stored['regions']) - REGIONS_SHOWN} more")
    shown = "-" if p is None else f"{p:.3f}"
    lines.append(f"verdict     {(stored['label'] or '-').upper()} (crack probability {shown})")
    if rows <= GRID_MAX[0] and cols <= GRID_MAX[1]:
        lines.append("grid        # crack (>= 0.5), + 0.3-0.5, . below 0.3")
        lines += ["  " + "".join(_mark(v) for v in row) for row in stored["probabilities"]]
    return "\n".join(lines)


def _mark(p: float) -> str:
    return "#" if p >= 0.5 else "+" if p >= 0.3 else "."


def write_overlay(stored: dict[str, Any], path: Path, max_side: int) -> int:
    """Read the photo as a worker does (same limits), draw the map over it, save a PNG."""
    settings = get_settings()
    ref = stored["image_ref"]
    limits = SourceLimits.from_settings(settings)
    formats = tuple(settings.image_formats)
    try:
        image = read_overlay(ref, stored, max_side, limits, settings.max_image_pixels, formats)
    except ImageError as exc:
        print(f"crackq map: cannot read the photo {ref}: {exc}", file=sys.stderr)
        return 1
    image.save(path, "PNG")
    print(f"overlay written to {path}", file=sys.stderr)
    return 0

"""Arguments of `crackq map REQUEST_ID`."""

from __future__ import annotations

from pathlib import Path

from worker.cli import maps
from worker.cli.parsers import Add


def add_map(add: Add) -> None:
    p = add(
        "map",
        maps.run_map,
        help="show a mapped photo's crack map: tile probabilities, regions, verdict",
        description="Print the stored crack map of one photo submitted with --mode map (or "
        "auto, when it was large enough to map): its tile grid, per-tile crack probabilities "
        "(crack iff >= 0.5), connected regions and the photo's verdict. With -o, also read "
        "the photo (with the worker's reading limits) and write a PNG of it with the map "
        "drawn over it. Exit code 1 when the id is unknown or its photo was not mapped.",
    )
    p.add_argument("request_id", help="the result's request id (as printed by submit)")
    p.add_argument(
        "--format",
        choices=("json", "text"),
        default="text",
        help="text: a summary with a coarse grid (default); json: the full map",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PNG",
        help="write the photo with a heat map and region boxes over it to this PNG",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=2048,
        help="-o: the overlay's long side in px at most (default 2048; never enlarged)",
    )

"""Arguments of `crackq assets [list | show ASSET]`."""

from __future__ import annotations

from worker.cli import assets
from worker.cli.parsers import Add


def add_assets(add: Add) -> None:
    p = add(
        "assets",
        assets.run_assets,
        help="assets and their latest inspection: new cracks, trends (crackq_assets_v1)",
        description="List assets (photos submitted with --asset-id) with their latest "
        "inspection, the one before and a trend, newest first; `crackq assets show ASSET` "
        "prints one asset's inspections, oldest first.",
    )
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("asset_id", nargs="?", help="show: the asset")
    p.add_argument("--new-crack", action="store_true", help="list: only assets with a new crack")
    p.add_argument("--label", choices=("crack", "no_crack"), help="list: by latest label")
    p.add_argument("--limit", type=int, default=100, help="list: 0 = no limit (default 100)")
    p.add_argument("--format", choices=("table", "json"), default="table")

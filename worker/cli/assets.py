"""`crackq assets [list | show ASSET]`: assets, their latest inspection and their history."""

from __future__ import annotations

import argparse

from db import assets as assets_db
from worker.cli.output import cell, dict_table, sessions, to_json

LIST_COLUMNS = (
    "asset_id",
    "inspections",
    "latest_inspected_at",
    "latest_inspection_id",
    "latest_label",
    "latest_crack_probability",
    "trend",
    "first_crack_seen_at",
)
SHOW_COLUMNS = (
    "inspected_at",
    "inspection_id",
    "label",
    "photos",
    "crack_photos",
    "failed",
    "crack_probability",
    "crack_area_fraction",
)


def run_assets(args: argparse.Namespace) -> int:
    if args.action == "show":
        return _show(args)
    if args.asset_id is not None:
        raise ValueError("an asset id goes with `show`: crackq assets show ASSET")
    if args.limit < 0:
        raise ValueError("--limit must be >= 0")
    with sessions()() as session:
        rows = assets_db.list_assets(
            session, new_crack=args.new_crack, label=args.label, limit=args.limit or None
        )
    print(to_json(rows, indent=2) if args.format == "json" else dict_table(rows, LIST_COLUMNS))
    return 0


def _show(args: argparse.Namespace) -> int:
    """One asset's view row and its inspections; exit code 1 when no row names the asset."""
    if args.asset_id is None:
        raise ValueError("crackq assets show needs an asset id")
    with sessions()() as session:
        asset = assets_db.get_asset(session, args.asset_id)
        timeline = assets_db.inspections(session, args.asset_id) if asset else []
    if asset is None:
        print(f"no results name asset {args.asset_id!r}")
        return 1
    if args.format == "json":
        print(to_json({**asset, "timeline": timeline}, indent=2))
        return 0
    crack = asset["first_crack_seen_at"]
    print(
        f"asset {asset['asset_id']}: {asset['inspections']} inspection(s) of {asset['photos']} "
        f"photo(s) ({asset['queued_photos']} queued, {asset['failed_photos']} failed); "
        f"latest {asset['latest_label'] or '-'}, trend {asset['trend'] or '-'}; "
        + (f"crack first seen {cell(crack)}" if crack else "no crack seen")
    )
    print(dict_table(timeline, SHOW_COLUMNS))
    return 0

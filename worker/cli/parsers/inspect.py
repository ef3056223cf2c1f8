"""Arguments of `crackq submit`, `classify`, `results`, `status` and `requeue`."""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.cli import inspect
from worker.cli.parsers import Add


def _refs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("refs", nargs="*", help="image references: path, file://, http(s)://, s3://")
    p.add_argument("--dir", type=Path, help="submit every image file below this folder")
    p.add_argument("--from-file", type=Path, help="file with one reference per line")
    p.add_argument("--batch-id", help="label this submission (default: generated)")
    p.add_argument(
        "--mode",
        choices=("auto", "patch", "map"),
        default="auto",
        help="patch: classify each photo whole; map: map it tile by tile (crackq map "
        "shows it); auto (default): map photos with a side over "
        "CRACKQ_MAP_MIN_SIDE_FACTOR x the model's training patch",
    )
    p.add_argument("--asset-id", help="the asset these photos show (crackq assets)")
    p.add_argument(
        "--inspection-id", help="the inspection they belong to: one per visit of the asset"
    )
    p.add_argument("--captured-at", help="when they were taken, ISO-8601 (orders inspections)")
    p.add_argument(
        "--metadata",
        metavar="JSON",
        help='a JSON object stored with each row, e.g. \'{"camera": "drone-3"}\' (<= 4 KiB)',
    )


def add_submit(add: Add) -> None:
    p = add(
        "submit",
        inspect.run_submit,
        help="enqueue image references; prints their request ids at once",
    )
    _refs_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of ids")


def add_classify(add: Add) -> None:
    p = add(
        "classify",
        inspect.run_classify,
        help="submit, show progress until every row is stored, summarise",
    )
    _refs_args(p)
    p.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "none"),
        default="none",
        help="also print the rows",
    )


def add_results(add: Add) -> None:
    p = add("results", inspect.run_results, help="query stored results (table, CSV or JSON)")
    p.add_argument("--batch-id")
    p.add_argument("--request-id", action="append", help="repeatable")
    p.add_argument("--status", choices=("queued", "succeeded", "failed"))
    p.add_argument("--label", choices=("crack", "no_crack"))
    p.add_argument("--model-version")
    p.add_argument("--since", help="ISO-8601 time, e.g. 2026-11-25T00:00:00Z")
    p.add_argument("--limit", type=int, default=100, help="0 = no limit (default 100)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def add_status(add: Add) -> None:
    p = add(
        "status",
        inspect.run_status,
        help="queue depths, workers, rows/s over the last minute and the served model",
    )
    p.add_argument(
        "--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C"
    )


def add_requeue(add: Add) -> None:
    p = add(
        "requeue",
        inspect.run_requeue,
        help="re-send the messages of results still queued after a while (lost messages)",
        description="Re-send one message per result row still `queued` after --older-than "
        "seconds. A worker killed at the wrong instant can lose a message (the row then "
        "stays queued); re-sending is safe: each request id is stored once and a worker "
        "skips ids already finished.",
    )
    p.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="rows created more than this long ago (default: CRACKQ_VISIBILITY_TIMEOUT_S, "
        "after which Redis would have redelivered any message a worker still held)",
    )
    p.add_argument("--limit", type=int, default=100_000, help="at most this many (oldest first)")
    p.add_argument("--dry-run", action="store_true", help="list them; send nothing")

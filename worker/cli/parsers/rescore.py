"""Arguments of `crackq rescore`: re-score stored rows with a chosen model version."""

from __future__ import annotations

from worker.cli import rescore
from worker.cli.parsers import Add


def add_rescore(add: Add) -> None:
    p = add(
        "rescore",
        rescore.run_rescore,
        help="re-score stored rows with a chosen version, throttled, resumable",
        description="Send the succeeded rows created in [--since, --until) (of one --asset) "
        "back through the inference queue, answered by --model (default: the promoted "
        "version, any registered version may be named). Each row keeps its latest score; "
        "result_scores keeps every version's. Sending waits while the inference queue holds "
        "CRACKQ_RESCORE_WINDOW messages (live ones included) and workers answer live photos "
        "first. Run the same command again after a kill: its job goes on where it stopped. "
        "--status lists the jobs.",
    )
    p.add_argument("--since", help="ISO-8601: rows created at or after this time")
    p.add_argument("--until", help="ISO-8601: rows created before this time (default: now)")
    p.add_argument("--asset", help="only this asset's rows (asset_id)")
    p.add_argument("--model", metavar="V", help="the version to answer with (default: promoted)")
    p.add_argument("--window", type=int, help="default CRACKQ_RESCORE_WINDOW")
    p.add_argument("--rate", type=float, help="photos/s at most; default CRACKQ_RESCORE_RATE")
    p.add_argument("--by", help="who started it (default: your user name)")
    p.add_argument("--status", action="store_true", help="list the newest jobs and progress")
    p.add_argument("--limit", type=int, default=20, help="--status: newest N jobs")

"""The `crackq` command's one parser; each subcommand runs a function of a command module."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.recipe import AUGMENTS, RECIPES, Recipe
from worker.cli import (
    assets,
    deadletters,
    demo,
    finetune,
    inspect,
    labels,
    maps,
    models,
    rescore,
    review,
    service,
    shadow,
    ui,
)
from worker.settings import get_settings

EPILOG = """\
Settings come from CRACKQ_* environment variables or a .env file (see .env.example).
Start Flower (the operators' dashboard) with `crackq flower` (basic auth from
CRACKQ_FLOWER_BASIC_AUTH=user:password), or `celery -A worker.app flower`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crackq",
        description="Asynchronous crack inspection: Redis queue -> Celery -> ResNet50 -> PostgreSQL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, run: Callable[[argparse.Namespace], int], **kw: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, **kw)
        p.set_defaults(run=run)
        return p

    def refs_args(p: argparse.ArgumentParser) -> None:
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

    p = add(
        "submit",
        inspect.run_submit,
        help="enqueue image references; prints their request ids at once",
    )
    refs_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of ids")

    p = add(
        "classify",
        inspect.run_classify,
        help="submit, show progress until every row is stored, summarise",
    )
    refs_args(p)
    p.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "none"),
        default="none",
        help="also print the rows",
    )

    p = add("results", inspect.run_results, help="query stored results (table, CSV or JSON)")
    p.add_argument("--batch-id")
    p.add_argument("--request-id", action="append", help="repeatable")
    p.add_argument("--status", choices=("queued", "succeeded", "failed"))
    p.add_argument("--label", choices=("crack", "no_crack"))
    p.add_argument("--model-version")
    p.add_argument("--since", help="ISO-8601 time, e.g. 2026-11-25T00:00:00Z")
    p.add_argument("--limit", type=int, default=100, help="0 = no limit (default 100)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")

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

    p = add(
        "worker",
        service.run_worker,
        help="start a Celery worker with the right queue, pool and concurrency",
    )
    p.add_argument("--queues", "-Q", choices=("inference", "training"), default="inference")
    p.add_argument("--concurrency", "-c", type=int, help="threads (inference) ; default 2")
    p.add_argument("--hostname", "-n", help="Celery node name (default: QUEUE-PID@host)")
    p.add_argument("--loglevel", "-l", help="default: CRACKQ_LOG_LEVEL")
    p.add_argument(
        "--gpus",
        help="inference: comma-separated GPU indices, one worker process "
        "each (default: every visible GPU, or the CPU when there is none)",
    )

    p = add(
        "flower", service.run_flower, help="start Flower, the Celery dashboard, on the same broker"
    )
    p.add_argument("--port", type=int)
    p.add_argument(
        "--unauthenticated-api",
        action="store_true",
        help="allow Flower's HTTP API without auth (local testing only)",
    )

    p = add(
        "ui",
        ui.run_ui,
        help="the inspector's console in a browser: review queue, assets, models",
        description="Serve the console (review queue with one-key answers, asset timelines "
        "with crack-map overlays, model versions with promote and rollback) on "
        "CRACKQ_UI_ADDRESS:CRACKQ_UI_PORT (127.0.0.1:8600). Without CRACKQ_UI_USERS it needs "
        "no login and serves loopback only. Photos are read like a worker reads them: only "
        "below CRACKQ_ALLOWED_ROOTS, URLs through the same guard.",
    )
    p.add_argument("--address", help="listen here instead of CRACKQ_UI_ADDRESS")
    p.add_argument("--port", type=int, help="listen here instead of CRACKQ_UI_PORT")
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (prompted, or one line of stdin) and print its hash for "
        "CRACKQ_UI_USERS, then exit",
    )

    p = add("migrate", service.run_migrate, help="apply database migrations (alembic upgrade)")
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", metavar="REV", help="downgrade to REV instead")
    p.add_argument(
        "--create-database",
        action="store_true",
        help="CREATE DATABASE first when the server lacks it (needs the CREATEDB privilege)",
    )

    p = add(
        "finetune",
        finetune.run_finetune,
        help="fine-tune the model on the training queue (returns a run id)",
        description="crackq finetune [start] --data DIR ... | cancel RUN | status RUN | list "
        "| retry RUN | report RUN -o DIR",
    )
    p.add_argument(
        "verb",
        nargs="?",
        default="start",
        choices=("start", "cancel", "status", "list", "retry", "report"),
        help="retry RUN queues a failed or cancelled run again as a new run, same config; "
        "report RUN fetches its metrics.json, training.png, predictions.png from the "
        "artifact store (any machine)",
    )
    p.add_argument("run_id", nargs="?", help="the run, for cancel, status, retry and report")
    p.add_argument("-o", "--output", help="report: folder to write the files to (default ./RUN)")
    p.add_argument(
        "--checkpoint", action="store_true", help="report: also fetch the run's checkpoint"
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="folder with Positive/Negative (or crack/no_crack) sub-folders; repeatable",
    )
    p.add_argument(
        "--manifest",
        action="append",
        default=[],
        help="CSV with path,label[,group] (group: the source photo or asset, kept on one side "
        "of the split); repeatable",
    )
    p.add_argument(
        "--labels", action="store_true", help="also train on operators' labels (crackq label)"
    )
    p.add_argument("--val-data", help="explicit validation folder (default: grouped split)")
    p.add_argument("--no-promote", action="store_true", help="never promote automatically")
    p.add_argument("--wait", action="store_true", help="show live progress until the run ends")
    recipe = p.add_argument_group(
        "recipe (defaults: crackq's; --recipe card: the reference card's)"
    )
    recipe.add_argument(
        "--recipe", choices=RECIPES, default="default",
        help="the starting recipe: default (crackq's, README 'Fine-tuning') or card (the "
        "reference card's: batch 32, 5 epochs, AdamW, cosine, card augmentation, no precise "
        "BatchNorm); the flags below override its fields",
    )  # fmt: skip
    kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _bool}
    for f in dataclasses.fields(Recipe):
        default = f.default if f.default is not dataclasses.MISSING else None
        card = getattr(RECIPES["card"], f.name)
        kind = kinds.get(str(f.type).split(" ")[0], str)
        told = f"default {default}" + (f" (card: {card})" if card != default else "")
        recipe.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=None, help=told,
            choices=AUGMENTS if f.name == "augment" else None,  # README "Augmentation"
        )  # fmt: skip

    p = add(
        "models",
        _models,
        help="the model registry: list | show V | promote V | rollback | history | "
        "shadow V | compare V",
        description="rollback re-promotes the version promoted before the current one's "
        "promotion, walking back one promotion per rollback; history lists every promotion, "
        "rollback, failed load and shadow (who, when, why). shadow V makes inference workers "
        "also score live photos with V into shadow_scores (results untouched); compare V "
        "reports on them; promote checks the CRACKQ_PROMOTE_* gates against that traffic.",
    )
    p.add_argument(
        "verb", choices=("list", "show", "promote", "rollback", "history", "shadow", "compare")
    )
    p.add_argument("version", nargs="?")
    p.add_argument("--reason", help="promote/rollback/shadow: why, kept in the history")
    p.add_argument("--by", help="promote/rollback/shadow: who (default: your user name)")
    p.add_argument(
        "--force", action="store_true",
        help="promote: past failed promotion gates (needs --reason; recorded in the history)",
    )  # fmt: skip
    p.add_argument(
        "--fraction", type=float, metavar="F",
        help="shadow: share of live photos to score, by request id hash (default 1: all)",
    )  # fmt: skip
    p.add_argument("--off", action="store_true", help="shadow: stop shadowing")
    p.add_argument("--json", action="store_true", help="compare: JSON for tools")
    p.add_argument(
        "--flips", type=int, default=50, metavar="N",
        help="compare: request ids listed per flip direction (default 50)",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="history, compare (as --json); show: table = the model card, json = the registry row",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=50, help="history: newest N events")

    p = add(
        "label",
        labels.run_label,
        help="attach an operator's ground-truth label to a stored result",
    )
    p.add_argument("request_id", help="the result's request id")
    p.add_argument("label", choices=("crack", "no_crack"))
    p.add_argument("--by", help="who labelled it (default: your user name)")

    p = add(
        "review",
        review.run_review,
        help="the review queue: list | answer REQUEST_ID crack|no_crack|skip | undo REQUEST_ID",
        description="Photos the workers picked for a person to look at (README 'Review "
        "queue'): uncertain, borderline_map, asset_changed or sample. `list` (the default) "
        "shows the open ones, oldest first; `answer` labels one (a labels row with who and "
        "when, used by `crackq finetune --labels`) or skips it; `undo` reopens it and "
        "removes the label its answer wrote.",
    )
    p.add_argument("verb", nargs="?", choices=("list", "answer", "undo"), default="list")
    p.add_argument("request_id", nargs="?", help="answer, undo: the photo's request id")
    p.add_argument("answer", nargs="?", choices=("crack", "no_crack", "skip"), help="answer")
    p.add_argument("--by", help="answer: who (default: your user name)")
    p.add_argument(
        "--reason",
        choices=("uncertain", "borderline_map", "asset_changed", "sample"),
        help="list: only this rule's entries",
    )
    p.add_argument("--limit", type=int, default=100, help="list: 0 = no limit (default 100)")
    p.add_argument("--json", action="store_true", help="list: JSON for tools")

    p = add(
        "demo",
        demo.run_demo,
        help="the whole loop: train a first model, promote it, classify "
        "held-out photos through the queue, report accuracy",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="folder with Positive/Negative photos (default: "
        "synthetic images the demo draws itself)",
    )
    p.add_argument("--train-images", type=int, default=640, help="photos to train on (default 640)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    p.add_argument(
        "--classify", type=int, default=200, help="held-out photos to classify (default 200)"
    )

    p = add(
        "dead-letters",
        deadletters.run_dead_letters,
        help="refused messages with their reason: list | show ID | replay ID",
    )
    p.add_argument("verb", choices=("list", "show", "replay"))
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="list replayed ones too")

    p = add(
        "status",
        inspect.run_status,
        help="queue depths, workers, rows/s over the last minute and the served model",
    )
    p.add_argument(
        "--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C"
    )
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
    add("schema", service.run_schema, help="print the JSON Schemas of the task arguments")
    return parser


def _models(args: argparse.Namespace) -> int:
    if args.verb in ("shadow", "compare"):
        return shadow.run_shadow(args)
    return models.run_models(args)


def _bool(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from kombu.exceptions import OperationalError as BrokerUnavailable
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import RedisError

    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, LookupError) as exc:
        print(f"crackq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (RedisError, BrokerUnavailable) as exc:  # wrong password, TLS, unreachable
        broker = maybe_sanitize_url(settings.broker())  # password masked
        print(f"crackq {args.command}: error: broker {broker}: {exc}", file=sys.stderr)
        return 2

"""The `crackq` command: submit, classify, results, worker, flower, migrate, status."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.settings import get_settings

log = logging.getLogger("crackq")

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

    def refs_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("refs", nargs="*", help="image references: path, file://, http(s)://, s3://")
        p.add_argument("--dir", type=Path, help="submit every image file below this folder")
        p.add_argument("--from-file", type=Path, help="file with one reference per line")
        p.add_argument("--batch-id", help="label this submission (default: generated)")

    p = sub.add_parser("submit", help="enqueue image references; prints their request ids at once")
    refs_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of ids")

    p = sub.add_parser(
        "classify", help="submit, show progress until every row is stored, summarise"
    )
    refs_args(p)
    p.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "none"),
        default="none",
        help="also print the rows",
    )

    p = sub.add_parser("results", help="query stored results (table, CSV or JSON)")
    p.add_argument("--batch-id")
    p.add_argument("--request-id", action="append", help="repeatable")
    p.add_argument("--status", choices=("queued", "succeeded", "failed"))
    p.add_argument("--label", choices=("crack", "no_crack"))
    p.add_argument("--model-version")
    p.add_argument("--since", help="ISO-8601 time, e.g. 2026-11-25T00:00:00Z")
    p.add_argument("--limit", type=int, default=100, help="0 = no limit (default 100)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")

    p = sub.add_parser(
        "worker", help="start a Celery worker with the right queue, pool and concurrency"
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

    p = sub.add_parser("flower", help="start Flower, the Celery dashboard, on the same broker")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--unauthenticated-api",
        action="store_true",
        help="allow Flower's HTTP API without auth (local testing only)",
    )

    p = sub.add_parser("migrate", help="apply database migrations (alembic upgrade)")
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", metavar="REV", help="downgrade to REV instead")
    p.add_argument(
        "--create-database",
        action="store_true",
        help="CREATE DATABASE first when the server lacks it (needs the CREATEDB privilege)",
    )

    from worker.training_commands import add_finetune_parser

    add_finetune_parser(sub)

    p = sub.add_parser("models", help="the model registry: list | show V | promote V | rollback")
    p.add_argument("verb", choices=("list", "show", "promote", "rollback"))
    p.add_argument("version", nargs="?")

    p = sub.add_parser("label", help="attach an operator's ground-truth label to a stored result")
    p.add_argument("request_id", help="the result's request id")
    p.add_argument("label", choices=("crack", "no_crack"))
    p.add_argument("--by", help="who labelled it (default: your user name)")

    p = sub.add_parser(
        "demo",
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

    p = sub.add_parser(
        "dead-letters", help="refused messages with their reason: list | show ID | replay ID"
    )
    p.add_argument("verb", choices=("list", "show", "replay"))
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="list replayed ones too")

    p = sub.add_parser(
        "status", help="queue depths, workers, rows/s over the last minute and the served model"
    )
    p.add_argument(
        "--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C"
    )
    p = sub.add_parser(
        "requeue",
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
    sub.add_parser("schema", help="print the JSON Schemas of the task arguments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = COMMANDS[args.command]
    from kombu.exceptions import OperationalError as BrokerUnavailable
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import RedisError

    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, LookupError) as exc:
        print(f"crackq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (RedisError, BrokerUnavailable) as exc:  # wrong password, TLS, unreachable
        broker = maybe_sanitize_url(settings.broker())  # password masked
        print(f"crackq {args.command}: error: broker {broker}: {exc}", file=sys.stderr)
        return 2


def _refs(args: argparse.Namespace) -> list[str]:
    from worker.enqueue import refs_from_dir, refs_from_file

    refs = list(args.refs)
    if args.dir:
        refs += refs_from_dir(args.dir)
    if args.from_file:
        refs += refs_from_file(args.from_file)
    if not refs:
        raise ValueError("no image references given (pass refs, --dir or --from-file)")
    return refs


def cmd_submit(args: argparse.Namespace) -> int:
    from worker import commands

    sub = commands.submit(_refs(args), args.batch_id)
    if args.json:
        print(
            commands.to_json(
                {
                    "batch_id": sub.batch_id,
                    "request_ids": sub.request_ids,
                    "enqueued": sub.enqueued,
                    "already_finished": sub.already_finished,
                }
            )
        )
    else:
        print("\n".join(sub.request_ids))
        print(
            f"# batch {sub.batch_id}: {sub.enqueued} enqueued, {sub.already_finished} already "
            "finished",
            file=sys.stderr,
        )
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from worker import commands

    return commands.classify(_refs(args), args.batch_id, args.timeout, args.format)


def cmd_results(args: argparse.Namespace) -> int:
    from worker import commands

    return commands.results(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.launch import gpu_indices, worker_launch

    settings = get_settings()
    gpus = gpu_indices(args.gpus, settings.device) if args.queues == "inference" else []
    if len(gpus) <= 1:
        launch = worker_launch(
            settings,
            args.queues,
            concurrency=args.concurrency,
            hostname=args.hostname,
            loglevel=args.loglevel,
            on_gpu=bool(gpus),
        )
        env = {**os.environ, **launch.env}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[0]
        os.execvpe(launch.argv[0], launch.argv, env)
    procs = []
    for gpu in gpus:  # one process per GPU, each seeing only its own device
        launch = worker_launch(
            settings,
            args.queues,
            concurrency=args.concurrency,
            hostname=f"inference-gpu{gpu}@%h",
            loglevel=args.loglevel,
            on_gpu=True,
        )
        env = {**os.environ, **launch.env, "CUDA_VISIBLE_DEVICES": gpu}
        procs.append(subprocess.Popen(launch.argv, env=env))
    return max(p.wait() for p in procs)


def cmd_flower(args: argparse.Namespace) -> int:
    from worker.launch import flower_launch

    launch = flower_launch(get_settings(), args.port, args.unauthenticated_api)  # ValueError: main
    os.execvpe(launch.argv[0], launch.argv, {**os.environ, **launch.env})
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from worker import migrate

    url = get_settings().database()
    if args.create_database and migrate.create_database_if_missing(url):
        print("created database", make_url(url).database)
    if args.downgrade:
        migrate.downgrade(url, args.downgrade)
    else:
        migrate.upgrade(url, args.revision)
    print("database is at revision", args.downgrade or args.revision)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from worker import commands

    return commands.status(watch=args.watch)


def cmd_requeue(args: argparse.Namespace) -> int:
    from worker import commands

    older = args.older_than
    if older is None:
        older = float(get_settings().visibility_timeout_s)
    if older < 0 or args.limit < 1:
        raise ValueError("--older-than must be >= 0 and --limit >= 1")
    return commands.requeue(older, args.limit, args.dry_run)


def cmd_finetune(args: argparse.Namespace) -> int:
    from worker.training_commands import finetune

    return finetune(args)


def cmd_models(args: argparse.Namespace) -> int:
    from worker.training_commands import models_cmd

    return models_cmd(args)


def cmd_label(args: argparse.Namespace) -> int:
    from worker.training_commands import label_cmd

    return label_cmd(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import DemoPlan, run_demo

    plan = DemoPlan(args.data, args.train_images, args.epochs, args.classify)
    return run_demo(get_settings(), plan)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from worker.training_commands import dead_letters_cmd

    return dead_letters_cmd(args)


def cmd_schema(args: argparse.Namespace) -> int:
    from worker import commands
    from worker.messages import json_schema

    print(commands.to_json(json_schema(), indent=2))
    return 0


COMMANDS = {
    "submit": cmd_submit,
    "classify": cmd_classify,
    "results": cmd_results,
    "worker": cmd_worker,
    "flower": cmd_flower,
    "migrate": cmd_migrate,
    "status": cmd_status,
    "finetune": cmd_finetune,
    "models": cmd_models,
    "label": cmd_label,
    "demo": cmd_demo,
    "dead-letters": cmd_dead_letters,
    "requeue": cmd_requeue,
    "schema": cmd_schema,
}

if __name__ == "__main__":
    sys.exit(main())

"""Arguments of `crackq worker`, `flower`, `migrate` and `schema`."""

from __future__ import annotations

from worker.cli import service
from worker.cli.parsers import Add


def add_worker(add: Add) -> None:
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


def add_flower(add: Add) -> None:
    p = add(
        "flower", service.run_flower, help="start Flower, the Celery dashboard, on the same broker"
    )
    p.add_argument("--port", type=int)
    p.add_argument(
        "--unauthenticated-api",
        action="store_true",
        help="allow Flower's HTTP API without auth (local testing only)",
    )


def add_migrate(add: Add) -> None:
    p = add("migrate", service.run_migrate, help="apply database migrations (alembic upgrade)")
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", metavar="REV", help="downgrade to REV instead")
    p.add_argument(
        "--create-database",
        action="store_true",
        help="CREATE DATABASE first when the server lacks it (needs the CREATEDB privilege)",
    )


def add_schema(add: Add) -> None:
    add("schema", service.run_schema, help="print the JSON Schemas of the task arguments")

"""`crackq worker | flower | migrate | schema`: running and setting up the service."""

from __future__ import annotations

import argparse
import os

from sqlalchemy.engine import make_url

from worker import migrate
from worker.cli.output import to_json
from worker.launch import Launch, flower_launch, gpu_indices, pinned_to_gpu, worker_launch
from worker.messages import json_schema
from worker.settings import get_settings
from worker.supervise import supervise


def run_worker(args: argparse.Namespace) -> int:
    """One Celery worker in this process, or one child process per GPU when there are several."""
    settings = get_settings()
    gpus = gpu_indices(args.gpus, settings.device) if args.queues == "inference" else []

    def launch(hostname: str | None, on_gpu: bool) -> Launch:
        return worker_launch(
            settings,
            args.queues,
            concurrency=args.concurrency,
            hostname=hostname,
            loglevel=args.loglevel,
            on_gpu=on_gpu,
        )

    if len(gpus) <= 1:
        one = launch(args.hostname, on_gpu=bool(gpus))
        if gpus:
            one = pinned_to_gpu(one, gpus[0])
        os.execvpe(one.argv[0], one.argv, {**os.environ, **one.env})
    # one process per GPU, each seeing only its own device, on a metrics port of its own
    port = settings.metrics_port
    children = [
        pinned_to_gpu(launch(f"inference-gpu{gpu}@%h", on_gpu=True), gpu, port and port + i)
        for i, gpu in enumerate(gpus)
    ]
    return supervise(children)


def run_flower(args: argparse.Namespace) -> int:
    launch = flower_launch(get_settings(), args.port, args.unauthenticated_api)  # ValueError: main
    os.execvpe(launch.argv[0], launch.argv, {**os.environ, **launch.env})
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    url = get_settings().database()
    if args.create_database and migrate.create_database_if_missing(url):
        print("created database", make_url(url).database)
    if args.downgrade:
        migrate.downgrade(url, args.downgrade)
    else:
        migrate.upgrade(url, args.revision)
    print("database is at revision", args.downgrade or args.revision)
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print(to_json(json_schema(), indent=2))
    return 0

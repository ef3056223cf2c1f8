"""`crackq rescore --since T [--until T] [--asset A] [--model V]` and `crackq rescore --status`."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass

from db import registry
from db import rescore as jobs
from worker.app import INFERENCE_QUEUE, app
from worker.cli.output import sessions
from worker.metrics import queue_depth
from worker.rescore import Throttle, open_job, run_job
from worker.settings import get_settings


def run_rescore(args: argparse.Namespace) -> int:
    if args.status:
        return _status(args.limit)
    if not args.since:
        raise ValueError("--since is required (or --status)")
    since, until = _time(args.since), _time(args.until) if args.until else None
    made = sessions()
    with made() as session:
        if args.model:
            version = registry.get(session, args.model).version  # RegistryError if unknown
        else:
            live = registry.promoted(session)
            if live is None:
                raise ValueError("no version is promoted: name one with --model")
            version = live.version
    job, resumed = open_job(made, version, since, until, args.asset, args.by or getpass.getuser())
    verb = "resuming" if resumed else "started"
    print(
        f"{verb} rescore job {job.id}: {job.total} rows created in [{job.since:%Y-%m-%d %H:%M:%S}, "
        f"{job.until:%Y-%m-%d %H:%M:%S})" + (f" of asset {job.asset_id}" if job.asset_id else "")
        + f" to answer with {version}",
        flush=True,
    )  # fmt: skip
    settings = get_settings()
    throttle = Throttle(
        window=args.window or settings.rescore_window,
        rate=settings.rescore_rate if args.rate is None else args.rate,
    )
    import redis

    client = redis.Redis.from_url(settings.broker())

    def depth() -> int:
        found = queue_depth(client, [INFERENCE_QUEUE])
        return found[(INFERENCE_QUEUE, "waiting")] + found[(INFERENCE_QUEUE, "unacked")]

    progress = run_job(app, made, job, depth, throttle, lambda p: print(p.line(), flush=True))
    kept = progress.remaining
    print(
        f"rescore job {job.id} done: {progress.scored} of {progress.total} rows answered by "
        f"{version}" + (f"; {kept} kept their score (unreadable now?)" if kept else ""),
        flush=True,
    )
    return 0


def _status(limit: int) -> int:
    with sessions()() as session:
        found = jobs.recent_jobs(session, limit)
        if not found:
            print("no rescore jobs")
        for job in found:
            left = jobs.remaining(session, job)
            scope = f" asset {job.asset_id}" if job.asset_id else ""
            print(
                f"job {job.id} {job.status:<7} {job.model_version}: scored {max(0, job.total - left)}/"
                f"{job.total}, sent {job.sent}, rows created {job.since:%Y-%m-%d %H:%M:%S} to "
                f"{job.until:%Y-%m-%d %H:%M:%S}{scope}, updated {job.updated_at:%H:%M:%S}"
            )
    return 0


def _time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

"""What the CLI's submit, classify, results and status commands do (output for humans)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import results as results_db
from db.session import make_engine, make_sessionmaker
from db.tables import Result
from worker.enqueue import Submission
from worker.enqueue import submit as enqueue_submit
from worker.settings import get_settings

COLUMNS = (
    "request_id",
    "status",
    "label",
    "confidence",
    "model_version",
    "error_code",
    "image_ref",
)


def sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(get_settings().database(), pool_size=2))


def to_json(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=str)


def submit(refs: Sequence[str], batch_id: str | None) -> Submission:
    from worker.app import app

    return enqueue_submit(app, sessions(), refs, batch_id=batch_id)


def wait_for(
    session_factory: sessionmaker[Session],
    ids: Sequence[str],
    timeout: float,
    progress: bool = True,
) -> dict[str, int]:
    """Poll until every id has a final row (or `timeout`); shows a progress bar on a tty."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    bar = tqdm(
        total=len(ids),
        unit="img",
        disable=None if progress else True,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    counts: dict[str, int] = {}
    try:
        while True:
            with session_factory() as session:
                counts = results_db.status_counts(session, ids)
            done = counts.get("succeeded", 0) + counts.get("failed", 0)
            bar.update(done - bar.n)
            bar.set_postfix(failed=counts.get("failed", 0), refresh=False)
            if done >= len(ids) or time.monotonic() > deadline:
                return counts
            time.sleep(0.25)
    finally:
        bar.close()


def classify(refs: Sequence[str], batch_id: str | None, timeout: float, fmt: str) -> int:
    factory = sessions()
    t0 = time.perf_counter()
    sub = submit(refs, batch_id)
    print(f"submitted {len(sub.request_ids)} references as {sub.batch_id}", file=sys.stderr)
    counts = wait_for(factory, sub.request_ids, timeout, progress=True)
    elapsed = time.perf_counter() - t0
    with factory() as session:
        rows = results_db.query_results(session, request_ids=sub.request_ids, limit=None)
    print(summary(rows, len(sub.request_ids), elapsed))
    if fmt != "none":
        print(render(rows, fmt))
    done = counts.get("succeeded", 0) + counts.get("failed", 0)
    return 0 if done == len(sub.request_ids) else 1


def summary(rows: Sequence[Result], expected: int, elapsed: float) -> str:
    labels = Counter(r.label for r in rows if r.status == "succeeded")
    errors = Counter(r.error_code for r in rows if r.status == "failed")
    versions = Counter(r.model_version for r in rows if r.model_version)
    finished = sum(1 for r in rows if r.status != "queued")
    lines = [
        f"{finished}/{expected} finished in {elapsed:.1f} s ({finished / max(elapsed, 1e-9):.1f} img/s)",
        f"  crack: {labels.get('crack', 0)}   no_crack: {labels.get('no_crack', 0)}   "
        f"failed: {sum(errors.values())}",
    ]
    lines += [f"  failed with {code}: {n}" for code, n in errors.most_common()]
    lines += [f"  model {v}: {n} rows" for v, n in versions.most_common()]
    return "\n".join(lines)


def results(args: argparse.Namespace) -> int:
    since = dt.datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    with sessions()() as session:
        rows = results_db.query_results(
            session,
            request_ids=args.request_id,
            batch_id=args.batch_id,
            status=args.status,
            label=args.label,
            model_version=args.model_version,
            since=since,
            limit=args.limit or None,
        )
    print(render(rows, args.format))
    return 0


def as_dict(row: Result) -> dict[str, Any]:
    return {c.name: getattr(row, c.key) for c in Result.__table__.columns}


def render(rows: Sequence[Result], fmt: str) -> str:
    if fmt == "json":
        return to_json([as_dict(r) for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[c.name for c in Result.__table__.columns])
        writer.writeheader()
        writer.writerows(as_dict(r) for r in rows)
        return buf.getvalue().rstrip("\n")
    table = [COLUMNS] + [tuple(_cell(getattr(r, c)) for c in COLUMNS) for r in rows]
    widths = [min(60, max(len(row[i]) for row in table)) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(_fit(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def _fit(cell: str, width: int) -> str:
    """Pad to `width`; long cells keep their end, where paths differ."""
    return (cell if len(cell) <= width else "…" + cell[-(width - 1) :]).ljust(width)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def status(watch: float | None = None) -> int:
    """Queues, workers, throughput and the promoted model; again every `watch` seconds."""
    import redis

    from db import registry
    from worker.app import INFERENCE_QUEUE, TRAINING_QUEUE, app

    client = redis.Redis.from_url(get_settings().broker())
    while True:
        for queue in (INFERENCE_QUEUE, TRAINING_QUEUE):
            print(f"queue {queue}: {client.llen(queue)} waiting")
        replies = app.control.inspect(timeout=1.0).ping() or {}
        print(f"workers: {len(replies)}" + "".join(f"\n  {name}" for name in sorted(replies)))
        stale_after = get_settings().visibility_timeout_s
        with sessions()() as session:
            row = registry.promoted(session)
            recent = results_db.recent_activity(session, seconds=60)
            stale = results_db.stale_queued_count(session, stale_after)
        print(
            f"results: {recent['queued']} queued, {recent['finished']} finished in the last "
            f"minute ({recent['finished'] / 60:.1f}/s, {recent['failed']} failed)"
        )
        if stale:
            print(
                f"  {stale} queued for more than {stale_after} s: their messages may be lost; "
                "`crackq requeue` re-sends them"
            )
        print(
            f"promoted model: {row.version if row else 'none (workers serve an untrained model)'}"
        )
        if not watch:
            return 0
        sys.stdout.flush()
        time.sleep(watch)
        print()


def requeue(older_than_s: float, limit: int, dry_run: bool) -> int:
    """Re-send the messages of rows still queued after `older_than_s` seconds."""
    from worker.app import app
    from worker.enqueue import send

    with sessions()() as session:
        rows = results_db.stale_queued(session, older_than_s, limit)
    if dry_run:
        for row in rows:
            print(f"{row['request_id']}\t{row['image_ref']}")
        print(f"{len(rows)} rows queued for more than {older_than_s:g} s (dry run: nothing sent)")
        return 0
    send(app, rows)
    print(
        f"re-sent {len(rows)} messages for rows queued for more than {older_than_s:g} s; "
        "workers skip any that finish in the meantime"
    )
    return 0

"""`crackq submit | classify | results | status | requeue`: photos in, result rows out."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from db import deadletters, registry, review
from db import results as results_db
from db.tables import Result
from worker.app import INFERENCE_QUEUE, TRAINING_QUEUE, app
from worker.cli.output import render, sessions, to_json
from worker.enqueue import refs_from_dir, refs_from_file, send, submit
from worker.messages import AssetFields, parse
from worker.settings import get_settings
from worker.waiting import wait_rows


def run_submit(args: argparse.Namespace) -> int:
    sub = submit(
        app, sessions(), _refs(args), batch_id=args.batch_id, mode=args.mode, asset=_asset(args)
    )
    if args.json:
        print(
            to_json(
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


def run_classify(args: argparse.Namespace) -> int:
    """Submit, wait with a progress bar until every row is stored, summarise."""
    factory = sessions()
    t0 = time.perf_counter()
    sub = submit(
        app, factory, _refs(args), batch_id=args.batch_id, mode=args.mode, asset=_asset(args)
    )
    print(f"submitted {len(sub.request_ids)} references as {sub.batch_id}", file=sys.stderr)
    counts = wait_rows(factory, sub.request_ids, args.timeout, progress=True)
    elapsed = time.perf_counter() - t0
    with factory() as session:
        rows = results_db.query_results(session, request_ids=sub.request_ids, limit=None)
    print(summary(rows, len(sub.request_ids), elapsed))
    if args.format != "none":
        print(render(rows, args.format))
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


def run_results(args: argparse.Namespace) -> int:
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


def run_status(args: argparse.Namespace) -> int:
    """Queues, workers, throughput and the promoted model; again every --watch seconds."""
    import redis

    client = redis.Redis.from_url(get_settings().broker())
    while True:
        for queue in (INFERENCE_QUEUE, TRAINING_QUEUE):
            print(f"queue {queue}: {client.llen(queue)} waiting")
        print(f"unacked: {client.hlen('unacked')} messages held by workers")
        print(worker_lines(app.control.broadcast("crackq_model", reply=True, timeout=1.0)))
        settings = get_settings()
        stale_after = settings.requeue_lost_after_s
        with sessions()() as session:
            row = registry.promoted(session)
            recent = results_db.recent_activity(session, seconds=60)
            stale = results_db.stale_queued_count(session, stale_after)
            letters = deadletters.waiting_count(session)
            reviewing = review.queue_counts(session)
            labelled = review.label_counts(session)
        print(
            f"results: {recent['queued']} queued, {recent['finished']} finished in the last "
            f"minute ({recent['finished'] / 60:.1f}/s, {recent['failed']} failed)"
        )
        if stale:
            heal = (
                "self-heal re-sends those whose message is lost"
                if settings.self_heal
                else ("`crackq requeue` re-sends them")
            )
            print(f"  {stale} queued for more than {stale_after:g} s (stuck?): {heal}")
        print(
            f"dead letters: {letters} waiting"
            + (" (`crackq dead-letters list`)" if letters else "")
        )
        print(review_line(reviewing))
        print(
            f"labels: {labelled['crack']} crack, {labelled['no_crack']} no_crack "
            f"({labelled['from_review']} from the review queue)"
        )
        print(
            f"promoted model: {row.version if row else 'none (workers serve an untrained model)'}"
        )
        if not args.watch:
            return 0
        sys.stdout.flush()
        time.sleep(args.watch)
        print()


def review_line(counts: dict[str, dict[str, int]]) -> str:
    """`review queue: N open (reason n, ...); L labelled, S skipped`."""
    still = counts.get("open", {})
    by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(still.items()))
    decided = [f"{sum(counts.get(s, {}).values())} {s}" for s in ("labelled", "skipped")]
    return (
        f"review queue: {sum(still.values())} open"
        + (f" ({by_reason})" if by_reason else "")
        + f"; {', '.join(decided)}"
        + (" (`crackq review`)" if still else "")
    )


def worker_lines(replies: Sequence[dict[str, Any]] | None) -> str:
    """`workers: N` and a line per live worker: the version it serves, its metrics URL."""
    found = {name: r for reply in replies or [] for name, r in reply.items()}
    lines = [f"workers: {len(found)}"]
    for name, r in sorted(found.items()):
        served = r.get("version") if isinstance(r, dict) else None
        where = r.get("metrics") if isinstance(r, dict) else None
        line = f"  {name}: " + (f"serves {served}" if served else "no model loaded (training?)")
        lines.append(line + (f", metrics {where}/metrics" if where else ""))
    return "\n".join(lines)


def run_requeue(args: argparse.Namespace) -> int:
    """Re-send the messages of rows still queued after --older-than seconds."""
    older = args.older_than
    if older is None:
        older = float(get_settings().visibility_timeout_s)
    if older < 0 or args.limit < 1:
        raise ValueError("--older-than must be >= 0 and --limit >= 1")
    with sessions()() as session:
        rows = results_db.stale_queued(session, older, args.limit)
    if args.dry_run:
        for row in rows:
            print(f"{row['request_id']}\t{row['image_ref']}")
        print(f"{len(rows)} rows queued for more than {older:g} s (dry run: nothing sent)")
        return 0
    send(app, rows)
    print(
        f"re-sent {len(rows)} messages for rows queued for more than {older:g} s; "
        "workers skip any that finish in the meantime"
    )
    return 0


def _refs(args: argparse.Namespace) -> list[str]:
    refs = list(args.refs)
    if args.dir:
        refs += refs_from_dir(args.dir)
    if args.from_file:
        refs += refs_from_file(args.from_file)
    if not refs:
        raise ValueError("no image references given (pass refs, --dir or --from-file)")
    return refs


def _asset(args: argparse.Namespace) -> AssetFields | None:
    """--asset-id, --inspection-id, --captured-at, --metadata, checked as a message would be."""
    given = {
        "asset_id": args.asset_id,
        "inspection_id": args.inspection_id,
        "captured_at": args.captured_at,
        "metadata": json.loads(args.metadata) if args.metadata is not None else None,
    }
    if all(value is None for value in given.values()):
        return None
    parsed: AssetFields = parse(AssetFields, (), given)
    return parsed

"""`crackq review [list] | answer REQUEST_ID crack|no_crack|skip | undo REQUEST_ID`: the queue."""

from __future__ import annotations

import argparse
import getpass

from db import review
from worker.cli.output import dict_table, sessions, to_json

COLUMNS = ("request_id", "reason", "label", "confidence", "entered_at", "asset_id", "image_ref")


def run_review(args: argparse.Namespace) -> int:
    if args.verb == "answer":
        return _answer(args)
    if args.verb == "undo":
        return _undo(args)
    if args.request_id is not None:
        raise ValueError("a request id goes with `answer` or `undo`")
    if args.limit < 0:
        raise ValueError("--limit must be >= 0")
    with sessions()() as session:
        rows = review.open_entries(session, reason=args.reason, limit=args.limit or None)
        counts = review.queue_counts(session).get("open", {})
    if args.json:
        print(to_json(rows, indent=2))
        return 0
    total = sum(counts.values())
    by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    print(f"review queue: {total} open" + (f" ({by_reason})" if by_reason else ""))
    if rows:
        print(dict_table(rows, COLUMNS, digits=3))
        print("answer: crackq review answer REQUEST_ID crack|no_crack|skip [--by NAME]")
    return 0


def _answer(args: argparse.Namespace) -> int:
    if args.request_id is None or args.answer is None:
        raise ValueError("crackq review answer REQUEST_ID crack|no_crack|skip")
    by = args.by or getpass.getuser()
    with sessions()() as session, session.begin():
        entry = review.answer(session, args.request_id, args.answer, by)
        state = entry.state
    what = f"labelled {args.answer}" if state == "labelled" else "skipped"
    print(f"{args.request_id}: {what} by {by}")
    return 0


def _undo(args: argparse.Namespace) -> int:
    if args.request_id is None:
        raise ValueError("crackq review undo REQUEST_ID")
    with sessions()() as session, session.begin():
        review.undo(session, args.request_id)
    print(f"{args.request_id}: open again (the label its answer wrote is removed)")
    return 0

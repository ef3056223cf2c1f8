"""`crackq dead-letters list | show ID | replay ID`: messages the workers refused."""

from __future__ import annotations

import argparse

from db import deadletters
from worker.app import app
from worker.cli.output import row_fields, sessions, to_json

LETTER_FIELDS = ("id", "task_id", "task_name", "reason", "payload", "received_at", "replayed_at")


def run_dead_letters(args: argparse.Namespace) -> int:
    """List refused messages, or replay one (re-send its task with the stored kwargs)."""
    with sessions()() as session, session.begin():
        if args.verb == "list":
            for d in deadletters.list_letters(session, include_replayed=args.all):
                print(
                    f"{d.id:>6}  {d.received_at:%Y-%m-%d %H:%M:%S}  {d.task_name or '-'}  "
                    f"{d.task_id or '-'}  {d.reason}"
                )
            return 0
        if args.id is None:
            raise ValueError("dead-letters show/replay needs an ID")
        letter = deadletters.get(session, args.id)
        if args.verb == "show":
            print(to_json(row_fields(letter, LETTER_FIELDS), indent=2))
            return 0
        kwargs = letter.payload.get("kwargs")
        if not isinstance(kwargs, dict) or not letter.task_name:
            raise ValueError(
                f"dead letter {letter.id} has no decodable kwargs to replay "
                "(undecodable bodies are kept for inspection only)"
            )
        app.send_task(letter.task_name, kwargs=kwargs, task_id=letter.task_id)
        deadletters.mark_replayed(session, letter.id)
    print(f"replayed dead letter {args.id} as {letter.task_name}")
    return 0

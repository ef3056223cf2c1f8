"""`crackq label REQUEST_ID crack|no_crack`: an operator's ground truth for a stored result."""

from __future__ import annotations

import argparse
import getpass

from db import runs
from worker.cli.output import sessions


def run_label(args: argparse.Namespace) -> int:
    with sessions()() as session, session.begin():
        runs.set_label(session, args.request_id, args.label, args.by or getpass.getuser())
    print(f"labelled {args.request_id} as {args.label}")
    return 0

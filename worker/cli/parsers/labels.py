"""Arguments of `crackq label REQUEST_ID crack|no_crack`."""

from __future__ import annotations

from worker.cli import labels
from worker.cli.parsers import Add


def add_label(add: Add) -> None:
    p = add(
        "label",
        labels.run_label,
        help="attach an operator's ground-truth label to a stored result",
    )
    p.add_argument("request_id", help="the result's request id")
    p.add_argument("label", choices=("crack", "no_crack"))
    p.add_argument("--by", help="who labelled it (default: your user name)")

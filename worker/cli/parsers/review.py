"""Arguments of `crackq review [list | answer | undo]`, the review queue."""

from __future__ import annotations

from worker.cli import review
from worker.cli.parsers import Add


def add_review(add: Add) -> None:
    p = add(
        "review",
        review.run_review,
        help="the review queue: list | answer REQUEST_ID crack|no_crack|skip | undo REQUEST_ID",
        description="Photos the workers picked for a person to look at (README 'Review "
        "queue'): uncertain, borderline_map, asset_changed or sample. `list` (the default) "
        "shows the open ones, oldest first; `answer` labels one (a labels row with who and "
        "when, used by `crackq finetune --labels`) or skips it; `undo` reopens it and "
        "removes the label its answer wrote.",
    )
    p.add_argument("verb", nargs="?", choices=("list", "answer", "undo"), default="list")
    p.add_argument("request_id", nargs="?", help="answer, undo: the photo's request id")
    p.add_argument("answer", nargs="?", choices=("crack", "no_crack", "skip"), help="answer")
    p.add_argument("--by", help="answer: who (default: your user name)")
    p.add_argument(
        "--reason",
        choices=("uncertain", "borderline_map", "asset_changed", "sample"),
        help="list: only this rule's entries",
    )
    p.add_argument("--limit", type=int, default=100, help="list: 0 = no limit (default 100)")
    p.add_argument("--json", action="store_true", help="list: JSON for tools")

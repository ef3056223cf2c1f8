"""Arguments of `crackq dead-letters list | show ID | replay ID`."""

from __future__ import annotations

from worker.cli import deadletters
from worker.cli.parsers import Add


def add_dead_letters(add: Add) -> None:
    p = add(
        "dead-letters",
        deadletters.run_dead_letters,
        help="refused messages with their reason: list | show ID | replay ID",
    )
    p.add_argument("verb", choices=("list", "show", "replay"))
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="list replayed ones too")

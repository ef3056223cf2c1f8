"""Arguments of `crackq models`, the registry's verbs (shadow and compare included)."""

from __future__ import annotations

import argparse

from worker.cli import models, shadow
from worker.cli.parsers import Add


def add_models(add: Add) -> None:
    p = add(
        "models",
        _models,
        help="the model registry: list | show V | promote V | rollback | history | "
        "shadow V | compare V",
        description="rollback re-promotes the version promoted before the current one's "
        "promotion, walking back one promotion per rollback; history lists every promotion, "
        "rollback, failed load and shadow (who, when, why). shadow V makes inference workers "
        "also score live photos with V into shadow_scores (results untouched); compare V "
        "reports on them; promote checks the CRACKQ_PROMOTE_* gates against that traffic.",
    )
    p.add_argument(
        "verb", choices=("list", "show", "promote", "rollback", "history", "shadow", "compare")
    )
    p.add_argument("version", nargs="?")
    p.add_argument("--reason", help="promote/rollback/shadow: why, kept in the history")
    p.add_argument("--by", help="promote/rollback/shadow: who (default: your user name)")
    p.add_argument(
        "--force", action="store_true",
        help="promote: past failed promotion gates (needs --reason; recorded in the history)",
    )  # fmt: skip
    p.add_argument(
        "--fraction", type=float, metavar="F",
        help="shadow: share of live photos to score, by request id hash (default 1: all)",
    )  # fmt: skip
    p.add_argument("--off", action="store_true", help="shadow: stop shadowing")
    p.add_argument("--json", action="store_true", help="compare: JSON for tools")
    p.add_argument(
        "--flips", type=int, default=50, metavar="N",
        help="compare: request ids listed per flip direction (default 50)",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="history, compare (as --json); show: table = the model card, json = the registry row",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=50, help="history: newest N events")


def _models(args: argparse.Namespace) -> int:
    if args.verb in ("shadow", "compare"):
        return shadow.run_shadow(args)
    return models.run_models(args)

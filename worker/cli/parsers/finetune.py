"""Arguments of `crackq finetune`: its verbs and one flag per field of the training recipe."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from models.recipe import AUGMENTS, RECIPES, Recipe
from worker.cli import finetune
from worker.cli.parsers import Add


def add_finetune(add: Add) -> None:
    p = add(
        "finetune",
        finetune.run_finetune,
        help="fine-tune the model on the training queue (returns a run id)",
        description="crackq finetune [start] --data DIR ... | cancel RUN | status RUN | list "
        "| retry RUN | report RUN -o DIR",
    )
    p.add_argument(
        "verb",
        nargs="?",
        default="start",
        choices=("start", "cancel", "status", "list", "retry", "report"),
        help="retry RUN queues a failed or cancelled run again as a new run, same config; "
        "report RUN fetches its metrics.json, training.png, predictions.png from the "
        "artifact store (any machine)",
    )
    p.add_argument("run_id", nargs="?", help="the run, for cancel, status, retry and report")
    p.add_argument("-o", "--output", help="report: folder to write the files to (default ./RUN)")
    p.add_argument(
        "--checkpoint", action="store_true", help="report: also fetch the run's checkpoint"
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="folder with Positive/Negative (or crack/no_crack) sub-folders; repeatable",
    )
    p.add_argument(
        "--manifest",
        action="append",
        default=[],
        help="CSV with path,label[,group] (group: the source photo or asset, kept on one side "
        "of the split); repeatable",
    )
    p.add_argument(
        "--labels", action="store_true", help="also train on operators' labels (crackq label)"
    )
    p.add_argument("--val-data", help="explicit validation folder (default: grouped split)")
    p.add_argument("--no-promote", action="store_true", help="never promote automatically")
    p.add_argument("--wait", action="store_true", help="show live progress until the run ends")
    recipe = p.add_argument_group(
        "recipe (defaults: crackq's; --recipe card: the reference card's)"
    )
    recipe.add_argument(
        "--recipe", choices=RECIPES, default="default",
        help="the starting recipe: default (crackq's, README 'Fine-tuning') or card (the "
        "reference card's: batch 32, 5 epochs, AdamW, cosine, card augmentation, no precise "
        "BatchNorm); the flags below override its fields",
    )  # fmt: skip
    kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _bool}
    for f in dataclasses.fields(Recipe):
        default = f.default if f.default is not dataclasses.MISSING else None
        card = getattr(RECIPES["card"], f.name)
        kind = kinds.get(str(f.type).split(" ")[0], str)
        told = f"default {default}" + (f" (card: {card})" if card != default else "")
        recipe.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=None, help=told,
            choices=AUGMENTS if f.name == "augment" else None,  # README "Augmentation"
        )  # fmt: skip


def _bool(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")

"""What the CLI's finetune, models and label commands do (output for humans)."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import registry, runs
from db.tables import TrainingRun
from models.recipe import Recipe
from worker.commands import sessions, to_json
from worker.settings import get_settings
from worker.trainingdata import DataSpec

FINAL = ("succeeded", "failed", "cancelled")
RECIPE_FLAGS = {f.name: f for f in dataclasses.fields(Recipe)}


def add_finetune_parser(sub: Any) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune the model on the training queue (returns a run id)",
        description="crackq finetune [start] --data DIR ... | cancel RUN | status RUN | list",
    )
    p.add_argument(
        "verb", nargs="?", default="start", choices=("start", "cancel", "status", "list")
    )
    p.add_argument("run_id", nargs="?", help="the run, for cancel and status")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="folder with Positive/Negative (or crack/no_crack) sub-folders; repeatable",
    )
    p.add_argument(
        "--manifest", action="append", default=[], help="CSV with path,label; repeatable"
    )
    p.add_argument(
        "--labels", action="store_true", help="also train on operators' labels (crackq label)"
    )
    p.add_argument("--val-data", help="explicit validation folder (default: grouped split)")
    p.add_argument("--no-promote", action="store_true", help="never promote automatically")
    p.add_argument("--wait", action="store_true", help="show live progress until the run ends")
    recipe = p.add_argument_group("recipe (defaults: the reference card)")
    for name, f in RECIPE_FLAGS.items():
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = {"int": int, "float": float, "bool": _bool}.get(str(f.type).split(" ")[0], str)
        recipe.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=None, help=f"default {default}"
        )


def _bool(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    overrides = {k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k, None) is not None}
    return Recipe.from_dict(overrides)


def finetune(args: argparse.Namespace) -> int:
    factory = sessions()
    if args.verb == "list":
        with factory() as session:
            for run in runs.list_runs(session):
                print(
                    f"{run.run_id}  {run.status:<9}  {run.created_at:%Y-%m-%d %H:%M}  "
                    f"{run.model_version or '-'}  {run.message or ''}"
                )
        return 0
    if args.verb in ("cancel", "status"):
        if not args.run_id:
            raise ValueError(f"finetune {args.verb} needs a RUN id")
        with factory() as session, session.begin():
            run = (
                runs.request_cancel(session, args.run_id)
                if args.verb == "cancel"
                else runs.get_run(session, args.run_id)
            )
            if args.verb == "cancel":
                print(f"cancel requested for {run.run_id}; it stops within a few seconds")
                return 0
            print(to_json(describe(run), indent=2))
        return 0
    from worker.app import app
    from worker.finetune import start_run

    spec = DataSpec(
        folders=[str(_abs(d)) for d in args.data],
        manifests=[str(_abs(m)) for m in args.manifest],
        use_labels=args.labels,
        val_folder=str(_abs(args.val_data)) if args.val_data else None,
    )
    if not (spec.folders or spec.manifests or spec.use_labels):
        raise ValueError("no training data: pass --data DIR, --manifest CSV and/or --labels")
    recipe = recipe_from_args(args)
    auto = get_settings().auto_promote and not args.no_promote
    run_id = start_run(app, factory, spec, recipe, auto, get_settings().training_time_limit_s)
    print(run_id)
    if args.wait:
        run = wait_run(factory, run_id)
        print(to_json(describe(run), indent=2))
        return 0 if run.status == "succeeded" else 1
    return 0


def _abs(path: str) -> str:
    from pathlib import Path

    return str(Path(path).expanduser().resolve())


def describe(run: TrainingRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status,
        "message": run.message,
        "model_version": run.model_version,
        "promoted": run.promoted,
        "metrics": run.metrics,
        "progress": run.progress,
        "data": run.data_summary,
        "artifacts": run.artifacts_dir,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def wait_run(
    factory: sessionmaker[Session], run_id: str, timeout: float = 24 * 3600
) -> TrainingRun:
    """Show a live progress bar (epoch, step, loss, images/s) until the run ends."""
    from tqdm import tqdm

    bar = tqdm(
        total=1, unit="step", file=sys.stderr, dynamic_ncols=True, desc="queued", disable=None
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            with factory() as session:
                run = runs.get_run(session, run_id)
            p = run.progress or {}
            if p.get("steps"):
                total = int(p["steps"]) * int(p.get("epochs", 1))
                done = (int(p.get("epoch", 1)) - 1) * int(p["steps"]) + int(p.get("step", 0))
                bar.total = total
                bar.n = min(done, total)
                bar.set_description(f"epoch {p.get('epoch')}/{p.get('epochs')}")
                bar.set_postfix(
                    loss=f"{p.get('loss', 0):.4f}",
                    img_s=f"{p.get('images_per_s', 0):.1f}",
                    refresh=False,
                )
                bar.refresh()
            elif run.status == "running":
                bar.set_description("preparing data")
            if run.status in FINAL or time.monotonic() > deadline:
                return run
            time.sleep(0.5)
    finally:
        bar.close()


def models_cmd(args: argparse.Namespace) -> int:
    factory = sessions()
    with factory() as session, session.begin():
        if args.verb == "list":
            for v in registry.list_versions(session):
                m = v.metrics or {}
                print(
                    f"{v.version:<28} {v.status:<9} acc={_f(m.get('accuracy'))} auc={_f(m.get('auc'))} "
                    f"f1={_f(m.get('f1'))} int8={_int8(m)}  parent={v.parent_version or '-'}"
                )
            return 0
        if args.verb == "rollback":
            row = registry.rollback(session)
        elif args.verb in ("show", "promote"):
            if not args.version:
                raise ValueError(f"models {args.verb} needs a VERSION")
            row = (
                registry.promote(session, args.version)
                if args.verb == "promote"
                else registry.get(session, args.version)
            )
        cols = (
            "version",
            "parent_version",
            "status",
            "checkpoint_uri",
            "sha256",
            "config",
            "metrics",
            "data_summary",
            "created_at",
            "promoted_at",
        )
        print(to_json({c: getattr(row, c) for c in cols}, indent=2))
    if args.verb in ("promote", "rollback"):
        print(
            f"promoted {row.version}; inference workers switch within "
            f"{get_settings().model_poll_s:g} s",
            file=sys.stderr,
        )
    return 0


def _int8(metrics: dict[str, Any]) -> str:
    """yes: the checkpoint carries an INT8 graph that passed its check; no; or - (not tried)."""
    if not metrics.get("int8"):
        return "-"
    return "yes" if metrics["int8"].get("passed") else "no"


def _f(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "-"


def label_cmd(args: argparse.Namespace) -> int:
    with sessions()() as session, session.begin():
        runs.set_label(session, args.request_id, args.label, args.by or getpass.getuser())
    print(f"labelled {args.request_id} as {args.label}")
    return 0


def dead_letters_cmd(args: argparse.Namespace) -> int:
    """List refused messages, or replay one (re-send its task with the stored kwargs)."""
    from db import deadletters

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
            print(
                to_json(
                    {
                        "id": letter.id,
                        "task_id": letter.task_id,
                        "task_name": letter.task_name,
                        "reason": letter.reason,
                        "payload": letter.payload,
                        "received_at": letter.received_at,
                        "replayed_at": letter.replayed_at,
                    },
                    indent=2,
                )
            )
            return 0
        kwargs = letter.payload.get("kwargs")
        if not isinstance(kwargs, dict) or not letter.task_name:
            raise ValueError(
                f"dead letter {letter.id} has no decodable kwargs to replay "
                "(undecodable bodies are kept for inspection only)"
            )
        from worker.app import app

        app.send_task(letter.task_name, kwargs=kwargs, task_id=letter.task_id)
        deadletters.mark_replayed(session, letter.id)
    print(f"replayed dead letter {args.id} as {letter.task_name}")
    return 0

"""`crackq finetune [start] | cancel RUN | status RUN | list | retry RUN | report RUN`: runs."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import runs
from db.tables import TrainingRun
from models.recipe import RECIPES, Recipe
from worker.cli.output import row_fields, sessions, to_json
from worker.settings import get_settings
from worker.waiting import wait_run

RUN_FIELDS = (
    "run_id",
    "status",
    "message",
    "model_version",
    "promoted",
    "metrics",
    "progress",
    "worker",
    "heartbeat_at",
    "retry_of",
)


def run_finetune(args: argparse.Namespace) -> int:
    if args.verb in ("list", "status"):
        _sweep_dead()
    if args.verb == "retry":
        return _retry(args)
    if args.verb == "report":
        return _report(args)
    if args.verb == "list":
        with sessions()() as session:
            for run in runs.list_runs(session):
                print(
                    f"{run.run_id}  {run.status:<9}  {run.created_at:%Y-%m-%d %H:%M}  "
                    f"{run.model_version or '-'}  {run.message or ''}"
                )
        return 0
    if args.verb in ("cancel", "status"):
        if not args.run_id:
            raise ValueError(f"finetune {args.verb} needs a RUN id")
        with sessions()() as session, session.begin():
            if args.verb == "cancel":
                run = runs.request_cancel(session, args.run_id)
                print(f"cancel requested for {run.run_id}; it stops within a few seconds")
            else:
                print(to_json(describe(runs.get_run(session, args.run_id)), indent=2))
        return 0
    return _start(args)


def _start(args: argparse.Namespace) -> int:
    # Imported here, not at the top: they load torch, which `crackq --help` should not wait for.
    from worker.app import app
    from worker.runsubmit import start_run
    from worker.trainingdata import DataSpec

    spec = DataSpec(
        folders=[_abs(d) for d in args.data],
        manifests=[_abs(m) for m in args.manifest],
        use_labels=args.labels,
        val_folder=_abs(args.val_data) if args.val_data else None,
    )
    if not (spec.folders or spec.manifests or spec.use_labels):
        raise ValueError("no training data: pass --data DIR, --manifest CSV and/or --labels")
    settings = get_settings()
    auto = settings.auto_promote and not args.no_promote
    factory = sessions()
    limits = (settings.training_time_limit_s, settings.training_max_time_limit_s)
    run_id = start_run(app, factory, spec, recipe_from_args(args), auto, *limits)
    print(run_id)
    return _maybe_wait(args, factory, run_id)


def _retry(args: argparse.Namespace) -> int:
    from worker.app import app
    from worker.runsubmit import retry_run

    if not args.run_id:
        raise ValueError("finetune retry needs a RUN id")
    factory = sessions()
    run_id = retry_run(app, factory, args.run_id, get_settings())
    print(run_id)
    print(f"# {run_id} queued: a retry of {args.run_id} with the same config", file=sys.stderr)
    return _maybe_wait(args, factory, run_id)


def _report(args: argparse.Namespace) -> int:
    """The run's report files (and, with --checkpoint, its checkpoint), fetched and verified."""
    from worker.artifacts import Stores

    if not args.run_id:
        raise ValueError("finetune report needs a RUN id")
    factory = sessions()
    with factory() as session:
        run = runs.get_run(session, args.run_id)
        stored, local = dict(run.artifacts or {}), run.artifacts_dir
    dest = Path(args.output or args.run_id).expanduser()
    wanted = [n for n in stored if n != "checkpoint" or args.checkpoint]
    if not wanted:  # a run from before the artifact store: only its training machine has them
        return _copy_local(args.run_id, local, dest)
    stores = Stores(factory, get_settings().s3_endpoint_url)
    for name in wanted:
        item = stored[name]
        target = dest / (f"{run.model_version}.pt" if name == "checkpoint" else name)
        stores.fetch(item["url"], item["sha256"], target)
        print(f"{target}  {item['size']} bytes  sha256 {item['sha256'][:12]}  from {item['url']}")
    return 0


def _copy_local(run_id: str, local: str | None, dest: Path) -> int:
    source = Path(local) if local else None
    if source is None or not source.is_dir():
        print(
            f"run {run_id} has no files in the artifact store (it is older than the store, "
            "or did not finish) and its folder is not on this machine",
            file=sys.stderr,
        )
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "training.png", "predictions.png"):
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
            print(f"{dest / name}  copied from {source / name}")
    return 0


def _sweep_dead() -> None:
    """What a live worker's sweep would do, so a read never shows a dead run as running."""
    with sessions()() as session, session.begin():
        runs.fail_dead_runs(session, get_settings().run_dead_after_s)


def _maybe_wait(args: argparse.Namespace, factory: sessionmaker[Session], run_id: str) -> int:
    if args.wait:
        run = wait_run(factory, run_id)
        print(to_json(describe(run), indent=2))
        return 0 if run.status == "succeeded" else 1
    return 0


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The --recipe named (default: crackq's) with the --flags given on the command line."""
    base = RECIPES[getattr(args, "recipe", None) or "default"]
    names = (f.name for f in dataclasses.fields(Recipe))
    overrides = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    return Recipe.from_dict({**base.to_dict(), **overrides})


def describe(run: TrainingRun) -> dict[str, Any]:
    return {
        **row_fields(run, RUN_FIELDS),
        "data": run.data_summary,
        "artifacts": run.artifacts_dir,
        "stored": {name: item["url"] for name, item in (run.artifacts or {}).items()},
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def _abs(path: str) -> str:
    return str(Path(path).expanduser().resolve())

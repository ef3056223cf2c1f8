"""A fine-tuning run as named steps: data, parent, train, INT8, save, compare, register."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import registry, runs
from models.checkpoints import load_checkpoint, model_from_checkpoint, serving_config
from models.datasets import DatasetError
from models.evaluation import evaluate, metrics
from models.loop import make_loader
from models.network import ARCHITECTURE
from models.numerics import resolve_numerics
from models.progress import TrainingCancelled
from models.quantize import INT8_KEY
from models.recipe import Recipe
from models.training import TrainResult, fine_tune, save_trained
from models.transforms import EvalPreset
from worker.app import FINE_TUNE_TASK, TRAINING_QUEUE
from worker.int8_job import int8_in_child
from worker.runprogress import Report, RunTracker
from worker.settings import Settings
from worker.trainingdata import DataSpec, TrainingData, prepare, summary

log = logging.getLogger(__name__)
Json = dict[str, Any]


def start_run(
    app: Celery,
    sessions: sessionmaker[Session],
    spec: DataSpec,
    recipe: Recipe,
    auto_promote: bool,
    time_limit_s: float = 4 * 3600,
) -> str:
    """Record a queued run (committed first), then enqueue it; returns the run id."""
    run_id = uuid.uuid4().hex[:12]
    if recipe.time_limit_s is None:  # every run has a time limit, enforced between steps
        recipe = dataclasses.replace(recipe, time_limit_s=float(time_limit_s))
    with sessions() as session, session.begin():
        config = {"recipe": recipe.to_dict(), "auto_promote": auto_promote}
        runs.create_run(session, run_id, config, spec.to_dict())
    app.send_task(FINE_TUNE_TASK, kwargs={"run_id": run_id}, queue=TRAINING_QUEUE, task_id=run_id)
    return run_id


def execute_run(
    run_id: str, settings: Settings, sessions: sessionmaker[Session], report: Report
) -> dict[str, Any]:
    """Run a queued training run to its end; the run row always ends in a final status."""
    run = _mark_running(run_id, settings, sessions, report)
    try:
        return _fine_tuning_run(run)
    except TrainingCancelled as exc:
        message = f"cancelled: {exc.reason}; the promoted model is unchanged"
        _finish(sessions, run_id, "cancelled", message)
        return {"status": "cancelled", "reason": exc.reason}
    except (DatasetError, FileNotFoundError, PermissionError, ValueError) as exc:
        _finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        return {"status": "failed", "message": str(exc)}
    except BaseException as exc:  # time limit, OOM, bugs: the run must not stay "running"
        _finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise


@dataclasses.dataclass(frozen=True)
class _Run:
    """What the steps of one run share."""

    run_id: str
    spec: DataSpec
    recipe: Recipe
    auto_promote: bool
    settings: Settings
    sessions: sessionmaker[Session]
    tracker: RunTracker
    out_dir: Path


class _Parent(NamedTuple):
    version: str
    payload: dict[str, Any]  # loaded and verified once: trained from and compared with


class _Saved(NamedTuple):
    version: str
    path: Path
    sha256: str


def _fine_tuning_run(run: _Run) -> dict[str, Any]:
    """The run, top-down; each step is a function below, in this order."""
    data = prepare(run.spec, run.sessions, run.settings, run.recipe.val_fraction, run.recipe.seed)
    parent = _load_parent(run.sessions)
    result = _train(run, data, parent)
    int8 = _int8_graph(run, data, result)
    saved = _save(run, result, int8)
    baseline = _score_parent(run, data, parent) if parent is not None else None
    data_summary = summary(data, run.spec, result.skipped)
    _write_metrics(run, saved, result, data_summary, baseline)
    return _register(run, saved, parent, result, data_summary, baseline)


def _mark_running(
    run_id: str, settings: Settings, sessions: sessionmaker[Session], report: Report
) -> _Run:
    with sessions() as session, session.begin():
        row = runs.get_run(session, run_id)
        spec, config = DataSpec.from_dict(row.sources), dict(row.config)
        runs.update_run(session, run_id, status="running", started_at=True)
    recipe, auto_promote = Recipe.from_dict(config["recipe"]), config.get("auto_promote", True)
    tracker = RunTracker(run_id, sessions, report)
    out_dir = settings.data_dir / "runs" / run_id
    return _Run(run_id, spec, recipe, bool(auto_promote), settings, sessions, tracker, out_dir)


def _load_parent(sessions: sessionmaker[Session]) -> _Parent | None:
    """The promoted model, read and verified once, or None before the first promotion."""
    with sessions() as session:
        row = registry.promoted(session)
        if row is None:
            return None
        version, path, sha256 = row.version, Path(row.checkpoint_uri), row.sha256
    return _Parent(version, load_checkpoint(path, sha256))


def _train(run: _Run, data: TrainingData, parent: _Parent | None) -> TrainResult:
    """Fine-tune from the parent's weights when the recipe's init may use them."""
    uses_parent = run.recipe.init in ("auto", "checkpoint")
    init_state = parent.payload["state_dict"] if parent and uses_parent else None
    return fine_tune(
        data.parts.train,
        data.parts.val,
        run.recipe,
        out_dir=run.out_dir,
        init_state_dict=init_state,
        progress=run.tracker.progress,
        should_stop=run.tracker.should_stop,
        device=run.settings.device,
        load=data.load,
    )


def _int8_graph(run: _Run, data: TrainingData, result: TrainResult) -> dict[str, Any]:
    """The checkpoint's INT8 entry, or {}; the check's report goes into the run's metrics."""
    if run.settings.int8 != "auto":
        return {}
    run.tracker.progress({**run.tracker.last, "event": "int8"})
    # The INT8 child reads photos with models' own loader, without the allowed roots
    # or the URL reader: give it the operator's files only, never labelled refs.
    train, val = ([s for s in part if s[0] in data.load.trusted] for part in data.parts)
    serving = serving_config(result.metadata())
    size, threshold = serving.image_size, serving.threshold
    graph, result.metrics["int8"] = int8_in_child(result.model, size, threshold, train, val)
    return {} if graph is None else {INT8_KEY: graph}


def _save(run: _Run, result: TrainResult, int8: dict[str, Any]) -> _Saved:
    """The one write of the new checkpoint, hashed once as it lands."""
    version = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{run.run_id[:6]}"
    path = (run.settings.data_dir / "models" / f"{version}.pt").resolve()
    return _Saved(version, path, save_trained(result, path, version, **int8))


def _score_parent(run: _Run, data: TrainingData, parent: _Parent) -> dict[str, Any]:
    """The promoted model's metrics on this run's validation set."""
    recipe = run.recipe
    numerics = resolve_numerics(run.settings.device, recipe.precision, recipe.channels_last)
    model = model_from_checkpoint(parent.payload).to(numerics.device)
    preset = EvalPreset(recipe.image_size)
    loader = make_loader(data.parts.val, preset, recipe.batch_size, False, recipe, False, data.load)
    scored = evaluate(model, loader, numerics)
    return {"version": parent.version, **metrics(scored.labels, scored.p_crack)}


def _write_metrics(
    run: _Run, saved: _Saved, result: TrainResult, data: Json, baseline: Json | None
) -> None:
    report = {"version": saved.version, **result.metadata(), "data": data}
    text = json.dumps({**report, "promoted_baseline": baseline}, indent=2, default=str)
    (run.out_dir / "metrics.json").write_text(text)


def _register(
    run: _Run,
    saved: _Saved,
    parent: _Parent | None,
    result: TrainResult,
    data_summary: Json,
    baseline: Json | None,
) -> Json:
    """Register the version, promote it when it beats the parent, and close the run row."""
    better = baseline is None or _beats(result.metrics, baseline)
    promote = run.auto_promote and better
    init_note = f" ({result.init_note})" if result.init_note else ""
    note = (
        f"init {result.init}{init_note}; {'promoted' if promote else 'kept as candidate'}"
        f"{'' if better else ' (did not beat the promoted model on the same validation set)'}"
    )
    with run.sessions() as session, session.begin():
        registry.register(
            session,
            version=saved.version,
            parent_version=parent.version if parent else None,
            checkpoint_uri=str(saved.path),
            sha256=saved.sha256,
            architecture=ARCHITECTURE,
            config=result.recipe.to_dict(),
            metrics=result.metrics,
            data_summary=data_summary,
        )
        if promote:
            registry.promote(session, saved.version)
        runs.update_run(
            session,
            run.run_id,
            status="succeeded",
            finished_at=True,
            model_version=saved.version,
            promoted=promote,
            metrics={**result.metrics, "baseline": baseline},
            data_summary=data_summary,
            artifacts_dir=str(run.out_dir),
            message=note,
            progress={**run.tracker.last, "event": "done"},
        )
    log.info("run %s: version %s, %s", run.run_id, saved.version, note)
    outcome = {"status": "succeeded", "version": saved.version, "promoted": promote}
    return {**outcome, "metrics": result.metrics}


def _beats(new: dict[str, Any], old: dict[str, Any]) -> bool:
    key = ("auc", "accuracy")
    return tuple(new.get(k) or 0 for k in key) > tuple(old.get(k) or 0 for k in key)


def _finish(sessions: sessionmaker[Session], run_id: str, status: str, message: str) -> None:
    with sessions() as session, session.begin():
        runs.update_run(session, run_id, status=status, finished_at=True, message=message)
    log.warning("run %s %s: %s", run_id, status, message)

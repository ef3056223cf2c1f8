"""A fine-tuning run from start to finish: data, training, checkpoint, registry, promotion."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import registry, runs
from models.checkpoints import load_checkpoint, model_from_checkpoint
from models.classifier import ARCHITECTURE, resolve_numerics
from models.datasets import DatasetError, Loader, Sample
from models.evaluation import evaluate, metrics
from models.quantize import INT8_KEY, int8_for_checkpoint
from models.recipe import Recipe
from models.training import TrainingCancelled, fine_tune, make_loader, save_trained
from models.transforms import EvalPreset
from worker.app import FINE_TUNE_TASK, TRAINING_QUEUE
from worker.settings import Settings
from worker.trainingdata import DataSpec, prepare, summary

log = logging.getLogger(__name__)
Report = Callable[[dict[str, Any]], None]


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
        runs.create_run(
            session,
            run_id,
            {"recipe": recipe.to_dict(), "auto_promote": auto_promote},
            spec.to_dict(),
        )
    app.send_task(FINE_TUNE_TASK, kwargs={"run_id": run_id}, queue=TRAINING_QUEUE, task_id=run_id)
    return run_id


def execute_run(
    run_id: str, settings: Settings, sessions: sessionmaker[Session], report: Report
) -> dict[str, Any]:
    """Run a queued training run to its end; the run row always ends in a final status."""
    with sessions() as session, session.begin():
        run = runs.get_run(session, run_id)
        spec, config = DataSpec.from_dict(run.sources), dict(run.config)
        runs.update_run(session, run_id, status="running", started_at=True)
    recipe = Recipe.from_dict(config["recipe"])
    out_dir = settings.data_dir / "runs" / run_id
    try:
        outcome = _train_and_register(
            run_id,
            spec,
            recipe,
            bool(config.get("auto_promote", True)),
            settings,
            sessions,
            report,
            out_dir,
        )
    except TrainingCancelled as exc:
        _finish(
            sessions,
            run_id,
            "cancelled",
            f"cancelled: {exc.reason}; the promoted model is unchanged",
        )
        return {"status": "cancelled", "reason": exc.reason}
    except (DatasetError, FileNotFoundError, PermissionError, ValueError) as exc:
        _finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        return {"status": "failed", "message": str(exc)}
    except BaseException as exc:  # time limit, OOM, bugs: the run must not stay "running"
        _finish(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return outcome


def _train_and_register(
    run_id: str,
    spec: DataSpec,
    recipe: Recipe,
    auto_promote: bool,
    settings: Settings,
    sessions: sessionmaker[Session],
    report: Report,
    out_dir: Path,
) -> dict[str, Any]:
    prepared = prepare(spec, sessions, settings, recipe.val_fraction, recipe.seed)
    parts, load = prepared.parts, prepared.load
    data = summary(prepared, spec)
    with sessions() as session:
        parent = registry.promoted(session)
        parent_info = (
            (parent.version, Path(parent.checkpoint_uri), parent.sha256) if parent else None
        )
    # read and verified once: the run starts from, and is compared with, these very weights
    parent_payload = load_checkpoint(parent_info[1], parent_info[2]) if parent_info else None
    init_state = None
    if parent_payload is not None and recipe.init in ("auto", "checkpoint"):
        init_state = parent_payload["state_dict"]
    tracker = _Tracker(run_id, sessions, report)
    result = fine_tune(
        parts.train,
        parts.val,
        recipe,
        out_dir=out_dir,
        init_state_dict=init_state,
        progress=tracker.progress,
        should_stop=tracker.should_stop,
        device=settings.device,
        load=load,
    )
    version = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{run_id[:6]}"
    path = (settings.data_dir / "models" / f"{version}.pt").resolve()
    sha = save_trained(result, path, version)
    if settings.int8 == "auto":
        tracker.progress({**tracker.last, "event": "int8"})
        # The INT8 child reads photos with models' own loader, without the allowed roots
        # or the URL reader: give it the operator's files only, never labelled refs.
        train, val = ([s for s in part if s[0] in load.trusted] for part in parts)
        graph, result.metrics["int8"] = int8_for_checkpoint(path, sha, train, val)
        if graph is not None:  # saved again, with the graph inside and the report beside it
            sha = save_trained(result, path, version, **{INT8_KEY: graph})
    meta = result.metadata()
    data.update(skipped=len(result.skipped), skipped_examples=result.skipped[:20])
    baseline = (
        _score_promoted(parent_info[0], parent_payload, parts.val, recipe, settings.device, load)
        if parent_info is not None and parent_payload is not None
        else None
    )
    better = baseline is None or _beats(result.metrics, baseline)
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {"version": version, **meta, "data": data, "promoted_baseline": baseline},
            indent=2,
            default=str,
        )
    )
    with sessions() as session, session.begin():
        registry.register(
            session,
            version=version,
            parent_version=parent_info and parent_info[0],
            checkpoint_uri=str(path),
            sha256=sha,
            architecture=ARCHITECTURE,
            config=meta["recipe"],
            metrics=result.metrics,
            data_summary=data,
        )
        promote = auto_promote and better
        if promote:
            registry.promote(session, version)
        note = (
            f"init {result.init}{' (' + result.init_note + ')' if result.init_note else ''}; "
            f"{'promoted' if promote else 'kept as candidate'}"
            f"{'' if better else ' (did not beat the promoted model on the same validation set)'}"
        )
        runs.update_run(
            session,
            run_id,
            status="succeeded",
            finished_at=True,
            model_version=version,
            promoted=promote,
            metrics={**result.metrics, "baseline": baseline},
            data_summary=data,
            artifacts_dir=str(out_dir),
            message=note,
            progress={**tracker.last, "event": "done"},
        )
    log.info("run %s: version %s, %s", run_id, version, note)
    return {
        "status": "succeeded",
        "version": version,
        "promoted": promote,
        "metrics": result.metrics,
    }


def _score_promoted(
    version: str,
    payload: dict[str, Any],
    val: list[Sample],
    recipe: Recipe,
    device: str,
    load: Loader,
) -> dict[str, Any]:
    """The promoted model's metrics on this run's validation set."""
    model = model_from_checkpoint(payload)
    numerics = resolve_numerics(device, recipe.precision, recipe.channels_last)
    model = model.to(numerics.device)
    preset = EvalPreset(recipe.image_size)
    loader = make_loader(val, preset, recipe.batch_size, False, recipe, False, load)
    scored = evaluate(model, loader, numerics)
    return {"version": version, **metrics(scored.labels, scored.p_crack)}


def _beats(new: dict[str, Any], old: dict[str, Any]) -> bool:
    key = ("auc", "accuracy")
    return tuple(new.get(k) or 0 for k in key) > tuple(old.get(k) or 0 for k in key)


def _finish(sessions: sessionmaker[Session], run_id: str, status: str, message: str) -> None:
    with sessions() as session, session.begin():
        runs.update_run(session, run_id, status=status, finished_at=True, message=message)
    log.warning("run %s %s: %s", run_id, status, message)


class _Tracker:
    """Throttled progress to the run row and Flower, and the cancel flag, once a second."""

    def __init__(self, run_id: str, sessions: sessionmaker[Session], report: Report) -> None:
        self.run_id, self.sessions, self.report = run_id, sessions, report
        self.last: dict[str, Any] = {}
        self._saved = self._checked = 0.0
        self._cancel = False

    def progress(self, info: dict[str, Any]) -> None:
        self.last = {k: v for k, v in info.items() if k != "bad"}
        now = time.monotonic()
        if info.get("event") == "epoch" or now - self._saved >= 1.0:
            self._saved = now
            with self.sessions() as session, session.begin():
                runs.update_run(
                    session, self.run_id, progress=json.loads(json.dumps(self.last, default=str))
                )
            self.report(self.last)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            with self.sessions() as session:
                self._cancel = runs.cancel_requested(session, self.run_id)
        return self._cancel

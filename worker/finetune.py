"""A fine-tuning run as named steps: data, parent, train, INT8, save, compare, upload, register."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from db import registry, runs
from db.tables import TrainingRun
from models.checkpoints import load_checkpoint, serving_config
from models.network import ARCHITECTURE
from models.quantize import INT8_KEY
from models.recipe import Recipe
from models.training import TrainResult, fine_tune, save_trained
from worker import gates
from worker.artifacts import Stores
from worker.int8_job import int8_in_child
from worker.modelcache import cache_from_settings
from worker.runlife import Deadline, Guard, Heartbeat, RunLost, claim, to_the_end
from worker.runprogress import Report, RunTracker
from worker.runscores import by_group, check_shifts, score_parent, write_metrics
from worker.settings import Settings
from worker.trainingdata import DataSpec, TrainingData, patch_side, prepare, summary

log = logging.getLogger(__name__)
Json = dict[str, Any]


def execute_run(
    run_id: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    report: Report,
    worker: str = "local",
) -> dict[str, Any]:
    """Run a queued training run to its end; the run row always ends in a final status.

    The run is claimed first (queued -> running, atomically): a repeated or duplicated
    message for a run that is no longer queued does nothing.
    """
    row = claim(sessions, run_id, worker)
    if row is None:
        return {"status": "skipped", "reason": "not queued"}
    with Heartbeat(sessions, run_id, settings.run_heartbeat_s) as heartbeat:
        return to_the_end(
            sessions, run_id, lambda: _fine_tuning_run(_prepare(row, settings, report, heartbeat))
        )


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
    guard: Guard
    out_dir: Path


class _Parent(NamedTuple):
    version: str
    payload: dict[str, Any]  # loaded and verified once: trained from and compared with


class _Saved(NamedTuple):
    version: str
    path: Path
    sha256: str


class _Uploaded(NamedTuple):
    url: str  # the checkpoint's artifact URL, what the registry row holds
    files: dict[str, Any]  # name -> {"url", "sha256", "size"}: the run's artifacts


REPORT_FILES = ("metrics.json", "training.png", "predictions.png")


def _fine_tuning_run(run: _Run) -> dict[str, Any]:
    """The run, top-down; each step is a function below, in this order."""
    data = prepare(run.spec, run.sessions, run.settings, run.recipe.val_fraction, run.recipe.seed)
    run.guard.step("loading the parent")
    parent = _load_parent(run)
    result = _train(run, data, parent)
    _group_figures(data, result)
    run.guard.step("the shift check")
    _check_shifts(run, data, result)
    run.guard.step("the INT8 step")
    int8 = _int8_graph(run, data, result)
    run.guard.step("saving")
    saved = _save(run, result, {**int8, **_patch(data)})
    baseline = _score_parent(run, data, parent) if parent is not None else None
    data_summary = summary(data, run.spec, result.skipped)
    write_metrics(run.out_dir, saved.version, result, data_summary, baseline)
    run.guard.step("uploading")
    uploaded = _upload(run, saved)
    run.guard.step("registering")
    return _register(run, saved, uploaded, parent, result, data_summary, baseline)


def _prepare(row: TrainingRun, settings: Settings, report: Report, heartbeat: Heartbeat) -> _Run:
    spec, config = DataSpec.from_dict(row.sources), dict(row.config)
    recipe, auto_promote = Recipe.from_dict(config["recipe"]), config.get("auto_promote", True)
    sessions = heartbeat.sessions
    tracker = RunTracker(row.run_id, sessions, report)
    deadline = Deadline(recipe.time_limit_s or settings.training_time_limit_s)
    guard = Guard(heartbeat, deadline, tracker.should_stop)
    out_dir = settings.data_dir / "runs" / row.run_id
    return _Run(
        row.run_id, spec, recipe, bool(auto_promote), settings, sessions, tracker, guard, out_dir
    )


def _load_parent(run: _Run) -> _Parent | None:
    """The promoted model, read and verified once, or None before the first promotion.

    Its URL is resolved through the model cache: a training worker needs no shared disk.
    """
    with run.sessions() as session:
        row = registry.promoted(session)
        if row is None:
            return None
        version, url, sha256 = row.version, row.checkpoint_uri, row.sha256
    path = cache_from_settings(run.settings, run.sessions).path_for(url, sha256)
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
        should_stop=run.guard.should_stop,
        device=run.settings.device,
        load=data.load,
    )


def _group_figures(data: TrainingData, result: TrainResult) -> None:
    """Per-group figures of the best epoch at the serving threshold, into the run's metrics
    as `groups` (and so the checkpoint, the model card and metrics.json); only with groups."""
    scored, threshold = result.val_scores, result.metrics["chosen_threshold"]
    report = None if scored is None else by_group(data.parts.val, data.groups, scored, threshold)
    if report is not None:
        result.metrics["groups"] = report


def _check_shifts(run: _Run, data: TrainingData, result: TrainResult) -> None:
    """The shift check's report goes into the run's metrics (and so the checkpoint, the
    registry's model card and metrics.json)."""
    run.tracker.progress({**run.tracker.last, "event": "shift_check"})

    def check() -> None:
        if run.guard.should_stop():
            run.guard.step("the shift check")  # raises TrainingCancelled

    report = check_shifts(result, data.parts.val, data.load, run.settings.device, check)
    if report is not None:
        result.metrics["shift_check"] = report


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
    try:
        graph, result.metrics["int8"] = int8_in_child(
            result.model, size, threshold, train, val, timeout_s=run.guard.deadline.remaining()
        )
    except subprocess.TimeoutExpired:  # the child was killed when the run's budget ran out
        run.guard.deadline.expired("during the INT8 step")
    return {} if graph is None else {INT8_KEY: graph}


def _save(run: _Run, result: TrainResult, extra: dict[str, Any]) -> _Saved:
    """The one write of the new checkpoint, hashed once as it lands."""
    version = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{run.run_id[:6]}"
    path = (run.settings.data_dir / "models" / f"{version}.pt").resolve()
    return _Saved(version, path, save_trained(result, path, version, **extra))


def _patch(data: TrainingData) -> dict[str, Any]:
    """The training photos' side, which serving tiles big photos with (worker.mapping)."""
    side = patch_side(data)
    return {"patch_size": side} if side else {}


def _score_parent(run: _Run, data: TrainingData, parent: _Parent) -> dict[str, Any]:
    """The promoted model's metrics on this run's validation set."""
    val, device = data.parts.val, run.settings.device
    return score_parent(
        parent.version, parent.payload, val, data.load, run.recipe, device, data.groups
    )


def _upload(run: _Run, saved: _Saved) -> _Uploaded:
    """The checkpoint and the report files, put in CRACKQ_ARTIFACT_STORE for every machine."""
    store = Stores(run.sessions, run.settings.s3_endpoint_url).for_writing(
        run.settings.artifact_store
    )
    checkpoint = store.put(saved.path, f"models/{saved.version}.pt")
    if checkpoint.sha256 != saved.sha256:
        raise RuntimeError(
            f"checkpoint {saved.path} changed after it was saved (sha256 {checkpoint.sha256}, "
            f"saved as {saved.sha256}); not registering it"
        )
    files = {"checkpoint": checkpoint._asdict()}
    for name in REPORT_FILES:
        path = run.out_dir / name
        if path.is_file():
            files[name] = store.put(path, f"runs/{run.run_id}/{name}")._asdict()
    log.info(
        "run %s: checkpoint %s and %d report files stored",
        run.run_id,
        checkpoint.url,
        len(files) - 1,
    )
    return _Uploaded(checkpoint.url, files)


def _register(
    run: _Run,
    saved: _Saved,
    uploaded: _Uploaded,
    parent: _Parent | None,
    result: TrainResult,
    data_summary: Json,
    baseline: Json | None,
) -> Json:
    """Register the version, promote it when it beats the parent (gates.ScoreGate), and
    close the run row."""
    gate = gates.ScoreGate.from_settings(run.settings)
    worse = [] if baseline is None else gate.refusals(result.metrics, baseline)
    promote = run.auto_promote and not worse
    init_note = f" ({result.init_note})" if result.init_note else ""
    why = f" (did not beat the promoted model on the same validation set: {'; '.join(worse)})"
    note = (
        f"init {result.init}{init_note}; {'promoted' if promote else 'kept as candidate'}"
        f"{why if worse else ''}"
    )
    with run.sessions() as session, session.begin():
        registry.register(
            session,
            version=saved.version,
            parent_version=parent.version if parent else None,
            checkpoint_uri=uploaded.url,
            sha256=saved.sha256,
            architecture=ARCHITECTURE,
            config=result.recipe.to_dict(),
            metrics=result.metrics,
            data_summary=data_summary,
        )
        rules = gates.Gates.from_settings(run.settings)
        held = gates.check(session, saved.version, rules) if promote else []
        if held:  # a new version has no shadowed photos yet: shadow it, then promote by hand
            promote, note = False, f"{note}; held back by promotion gates: {'; '.join(held)}"
        if promote:
            reason = "beat the promoted model" if parent else "the first trained model"
            registry.promote(session, saved.version, by=f"run {run.run_id}", reason=reason)
        closed = runs.finish_run(
            session,
            run.run_id,
            "succeeded",
            model_version=saved.version,
            promoted=promote,
            metrics={**result.metrics, "baseline": baseline},
            data_summary=data_summary,
            artifacts_dir=str(run.out_dir),
            artifacts=uploaded.files,
            message=note,
            progress={**run.tracker.last, "event": "done"},
        )
        if not closed:  # swept as dead meanwhile: register nothing (the transaction rolls back)
            raise RunLost(f"run {run.run_id} is no longer running in the database")
    log.info("run %s: version %s, %s", run.run_id, saved.version, note)
    outcome = {"status": "succeeded", "version": saved.version, "promoted": promote}
    return {**outcome, "metrics": result.metrics}

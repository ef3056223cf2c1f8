"""Submitting fine-tuning runs: a queued row (committed first), then the message; retries."""

from __future__ import annotations

import dataclasses
import uuid

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import runs
from models.recipe import Recipe
from worker.app import FINE_TUNE_TASK, TRAINING_QUEUE
from worker.settings import Settings
from worker.trainingdata import DataSpec


def start_run(
    app: Celery,
    sessions: sessionmaker[Session],
    spec: DataSpec,
    recipe: Recipe,
    auto_promote: bool,
    time_limit_s: float = 4 * 3600,
    max_time_limit_s: float = 12 * 3600,
    retry_of: str | None = None,
) -> str:
    """Record a queued run (committed first), then enqueue it; returns the run id.

    Every run has a time limit (the recipe's, else `time_limit_s`); one over
    `max_time_limit_s` is refused (ValueError) before anything is recorded.
    """
    limit = recipe.time_limit_s or float(time_limit_s)
    if limit > max_time_limit_s:
        raise ValueError(
            f"time limit {limit:g} s exceeds the maximum of {max_time_limit_s:g} s "
            "(CRACKQ_TRAINING_MAX_TIME_LIMIT_S); pass a smaller --time-limit-s"
        )
    recipe = dataclasses.replace(recipe, time_limit_s=limit)
    run_id = uuid.uuid4().hex[:12]
    with sessions() as session, session.begin():
        config = {"recipe": recipe.to_dict(), "auto_promote": auto_promote}
        runs.create_run(session, run_id, config, spec.to_dict(), retry_of=retry_of)
    app.send_task(FINE_TUNE_TASK, kwargs={"run_id": run_id}, queue=TRAINING_QUEUE, task_id=run_id)
    return run_id


def retry_run(app: Celery, sessions: sessionmaker[Session], run_id: str, settings: Settings) -> str:
    """Queue a failed or cancelled run again, as a new run with the same config; its id."""
    with sessions() as session:
        old = runs.get_run(session, run_id)
        if old.status not in ("failed", "cancelled"):
            raise ValueError(f"run {run_id} is {old.status}: only failed or cancelled runs retry")
        spec, config = DataSpec.from_dict(old.sources), dict(old.config)
    recipe, auto = Recipe.from_dict(config["recipe"]), bool(config.get("auto_promote", True))
    limits = (settings.training_time_limit_s, settings.training_max_time_limit_s)
    return start_run(app, sessions, spec, recipe, auto, *limits, retry_of=run_id)

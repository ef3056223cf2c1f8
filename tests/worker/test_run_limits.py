"""A run's time limit: capped at submit, hard through the INT8 child; retries of ended runs."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import pytest

from db import runs
from models.network import build_model
from models.progress import TrainingCancelled
from models.quantize import MIN_CHECK_PHOTOS
from models.recipe import Recipe
from worker.int8_job import int8_in_child
from worker.runlife import Deadline
from worker.runsubmit import retry_run, start_run
from worker.settings import Settings
from worker.trainingdata import DataSpec

pytestmark = pytest.mark.usefixtures("clean_tables")
SPEC = DataSpec(folders=["/data/labelled"])


@pytest.fixture
def app(redis_client):
    from worker.app import app

    yield app
    redis_client.delete("training")  # no training worker of a later test may take these


def test_a_time_limit_over_the_maximum_is_refused_and_nothing_is_queued(app, sessions) -> None:
    recipe = Recipe(time_limit_s=7200.0)
    with pytest.raises(ValueError, match="exceeds the maximum of 3600 s .*MAX_TIME_LIMIT_S"):
        start_run(app, sessions, SPEC, recipe, True, 600, max_time_limit_s=3600)
    with pytest.raises(ValueError, match="exceeds the maximum"):  # nor the default over it
        start_run(app, sessions, SPEC, Recipe(), True, 7200, max_time_limit_s=3600)
    with sessions() as s:
        assert list(runs.list_runs(s)) == []
    run_id = start_run(app, sessions, SPEC, Recipe(), True, 600, max_time_limit_s=3600)
    with sessions() as s:
        assert runs.get_run(s, run_id).config["recipe"]["time_limit_s"] == 600


def test_retry_queues_a_failed_run_again_with_the_same_config(app, sessions) -> None:
    recipe = Recipe(epochs=3, lr=3e-4, time_limit_s=900.0)
    first = start_run(app, sessions, SPEC, recipe, False, 600, 3600)
    with sessions() as s, s.begin():
        runs.claim_run(s, first, "w")
        runs.finish_run(s, first, "failed", message="worker died: ...")
    second = retry_run(app, sessions, first, Settings())
    with sessions() as s:
        old, new = runs.get_run(s, first), runs.get_run(s, second)
    assert second != first and new.status == "queued" and new.retry_of == first
    assert (new.config, new.sources) == (old.config, old.sources)
    with pytest.raises(ValueError, match="is queued: only failed or cancelled runs retry"):
        retry_run(app, sessions, second, Settings())


def test_the_deadline_counts_from_the_claim_and_names_the_step() -> None:
    deadline = Deadline(0.2)
    deadline.check("before saving")
    assert 0 < deadline.remaining() <= 0.2
    time.sleep(0.25)
    with pytest.raises(TrainingCancelled, match=r"time limit of 0.2 s reached before saving"):
        deadline.check("before saving")


@pytest.mark.skipif(
    importlib.util.find_spec("nncf") is None or importlib.util.find_spec("openvino") is None,
    reason="needs crackq[openvino] (openvino and nncf)",
)
def test_the_int8_child_is_killed_when_the_runs_budget_runs_out(tmp_path: Path) -> None:
    val = [(str(tmp_path / f"{i}.jpg"), i % 2) for i in range(MIN_CHECK_PHOTOS)]
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        int8_in_child(build_model(), 64, 0.5, val, val, timeout_s=1.5)
    assert time.monotonic() - t0 < 15  # saving the job takes a moment; the child got 1.5 s

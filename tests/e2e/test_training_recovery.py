"""Training runs through real workers: a SIGKILLed run is failed by heartbeat, retried, run once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db import registry, runs
from harness.procs import READY, wait_until, worker
from tests.conftest import real_data_or_skip
from tests.e2e.test_finetune_e2e import FINETUNE_ARGS, small_real_set

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
DEAD_AFTER_S, SWEEP_S = 6, 1


def crackq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


def run_row(sessions, run_id: str):
    with sessions() as s:
        return runs.get_run(s, run_id)


def ended(sessions, run_id: str, timeout_s: float):
    wait_until(lambda: run_row(sessions, run_id).status not in ("queued", "running"), timeout_s)
    return run_row(sessions, run_id)


@pytest.mark.timeout(900)
def test_killed_run_fails_by_heartbeat_retry_succeeds_and_a_repeat_runs_once(
    tmp_path: Path, sessions
) -> None:
    data = small_real_set(tmp_path / "train", 100)
    val = small_real_set(tmp_path / "val", 50, start=6000)
    env = {
        "CRACKQ_ALLOWED_ROOTS": str(real_data_or_skip()),
        "CRACKQ_DATA_DIR": str(tmp_path / "state"),
        "CRACKQ_INT8": "off",
        "CRACKQ_RUN_HEARTBEAT_S": "1",
        "CRACKQ_RUN_DEAD_AFTER_S": str(DEAD_AFTER_S),
        "CRACKQ_SWEEP_S": str(SWEEP_S),
        "CRACKQ_HOLDS_HEARTBEAT_S": "1",
    }
    args = ["finetune", "--data", str(data), "--val-data", str(val), *FINETUNE_ARGS]
    with (
        worker(tmp_path, "trainA", queue="training", env=env) as a,
        worker(tmp_path, "trainB", queue="training", env=env) as b,
    ):
        a.wait_for_log(READY, 120)
        b.wait_for_log(READY, 120)
        out = crackq(env, *args, "--epochs", "3")
        assert out.returncode == 0, out.stderr
        first = out.stdout.strip()
        assert wait_until(lambda: run_row(sessions, first).progress.get("step"), 300)
        holder = run_row(sessions, first).worker
        victim, survivor = (a, b) if holder == "trainA@localhost" else (b, a)
        assert holder in ("trainA@localhost", "trainB@localhost"), holder
        victim.kill()  # SIGKILL mid-epoch: no handler runs, the row says running
        killed = time.monotonic()
        row = ended(sessions, first, DEAD_AFTER_S + 60)
        failed_after = time.monotonic() - killed
        print(f"\nkill -9 -> run failed: {failed_after:.1f} s ({row.message})")
        assert row.status == "failed" and row.message.startswith("worker died: no heartbeat")
        assert holder in row.message
        assert failed_after < DEAD_AFTER_S + 10 * SWEEP_S

        out = crackq(env, "finetune", "retry", first)
        assert out.returncode == 0, out.stderr
        retried = out.stdout.strip()
        row = ended(sessions, retried, 600)
        assert row.status == "succeeded", (row.message, survivor.log()[-3000:])
        assert row.retry_of == first and row.config == run_row(sessions, first).config

        # The same run id sent twice, to two idle workers: it runs once.
        with worker(tmp_path, "trainC", queue="training", env=env) as c:
            c.wait_for_log(READY, 120)
            twice = duplicate_run(env, data, val)
            row = ended(sessions, twice, 600)
            assert row.status == "succeeded", row.message
            logs = lambda: survivor.log() + c.log()  # noqa: E731
            assert wait_until(lambda: f"run {twice} is " in logs(), 60), "no repeat was refused"
            assert logs().count(f"run {twice}: version") == 1
    with sessions() as s:
        made = [v.version for v in registry.list_versions(s) if v.version.endswith(twice[:6])]
    assert len(made) == 1, made


def duplicate_run(env: dict[str, str], data: Path, val: Path) -> str:
    """A queued run whose message is sent twice (as a redelivery would); its id."""
    from models.recipe import Recipe
    from worker.app import FINE_TUNE_TASK, TRAINING_QUEUE, app
    from worker.cli.output import sessions
    from worker.runsubmit import start_run
    from worker.trainingdata import DataSpec

    spec = DataSpec(folders=[str(data)], val_folder=str(val))
    recipe = Recipe(epochs=1, batch_size=16, image_size=96, num_workers=0)
    run_id = start_run(app, sessions(), spec, recipe, True, 600, 3600)
    app.send_task(FINE_TUNE_TASK, kwargs={"run_id": run_id}, queue=TRAINING_QUEUE, task_id=run_id)
    return run_id

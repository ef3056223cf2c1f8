"""A training worker SIGKILLed mid-run: failed by heartbeat, retried, and a run sent twice runs once.

Two training workers listen; `crackq finetune` starts a run and the one that claims it is
SIGKILLed mid-epoch, so no handler runs and its row still says `running`. The survivor's
upkeep must mark the run failed once its heartbeat is older than CRACKQ_RUN_DEAD_AFTER_S;
`crackq finetune retry` must then succeed on the survivor. Last, one queued run's message is
sent twice (as a redelivery would) with a third worker idle: the atomic claim must let it
execute once, and the registry must gain one version for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from harness.faults.rig import Rig, fresh_broker, producer_app
from harness.procs import READY, wait_until, worker

HOUR = 3600
DEAD_AFTER_S, SWEEP_S = 6, 1
SHORT = {  # seconds: heartbeat every 1, dead after 6, sweeps every 1
    "CRACKQ_RUN_HEARTBEAT_S": "1",
    "CRACKQ_RUN_DEAD_AFTER_S": str(DEAD_AFTER_S),
    "CRACKQ_SWEEP_S": str(SWEEP_S),
    "CRACKQ_HOLDS_HEARTBEAT_S": "1",
    "CRACKQ_INT8": "off",
}
RECIPE = ["--batch-size", "16", "--image-size", "96", "--num-workers", "0"]


def labelled_set(dest: Path, photos: list[str], per_class: int, skip: int = 0) -> Path:
    """A Positive/Negative folder of symlinks to `per_class` photos of each class in `photos`."""
    for cls in ("Positive", "Negative"):
        (dest / cls).mkdir(parents=True)
        mine = sorted(p for p in photos if Path(p).parent.name == cls)[skip : skip + per_class]
        for p in mine:
            (dest / cls / Path(p).name).symlink_to(p)
    return dest


def crackq(env: dict[str, str], *args: str) -> str:
    """`crackq ARGS` as a user runs it; its stdout, or RuntimeError with its stderr."""
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"crackq {args[0]} {args[1]}: {out.stderr[-2000:]}")
    return out.stdout.strip()


def kill9_training(rig: Rig, n: int = 200, timeout_s: float = 600) -> dict[str, Any]:
    """The run's holder SIGKILLed mid-epoch; `n` photos split into training and validation."""
    from db import registry, runs
    from worker.app import TRAINING_QUEUE

    fault = "kill9_training"
    fresh_broker(rig.broker_url).delete(TRAINING_QUEUE)
    tmp = rig.tmp / f"{fault}-{time.monotonic_ns()}"
    per_class = max(10, n // 3)
    data = labelled_set(tmp / "train", rig.photos, per_class)
    val = labelled_set(tmp / "val", rig.photos, max(5, per_class // 2), skip=per_class)
    sessions = sessionmaker(rig.engine)
    env = {
        "CRACKQ_ALLOWED_ROOTS": str(rig.root),
        "CRACKQ_BROKER_URL": rig.broker_url,
        "CRACKQ_DATABASE_URL": rig.engine.url.render_as_string(hide_password=False),
        "CRACKQ_DATA_DIR": str(tmp / "state"),
        **SHORT,
    }

    def row(run_id: str) -> Any:
        with sessions() as s:
            return runs.get_run(s, run_id)

    def ended(run_id: str, within_s: float) -> Any:
        wait_until(lambda: row(run_id).status not in ("queued", "running"), within_s)
        return row(run_id)

    args = ["finetune", "--data", str(data), "--val-data", str(val), *RECIPE]
    app = producer_app(rig.broker_url, HOUR)
    with (
        worker(tmp, "trainA", queue=TRAINING_QUEUE, env=env) as a,
        worker(tmp, "trainB", queue=TRAINING_QUEUE, env=env) as b,
    ):
        a.wait_for_log(READY, 300)
        b.wait_for_log(READY, 300)
        first = crackq(env, *args, "--epochs", "3")
        stepped = wait_until(lambda: bool(row(first).progress.get("step")), 300)
        holder = row(first).worker
        victim, survivor = (a, b) if holder == "trainA@localhost" else (b, a)
        victim.kill()  # SIGKILL mid-epoch: no handler runs, the row says running
        killed = time.monotonic()
        dead = ended(first, DEAD_AFTER_S + 60)
        failed_after = time.monotonic() - killed
        by_heartbeat = dead.status == "failed" and dead.message.startswith("worker died")

        retried = crackq(env, "finetune", "retry", first)
        again = ended(retried, timeout_s)
        same_config = again.retry_of == first and again.config == row(first).config

        # One queued run whose message is sent twice, a third worker idle: it runs once.
        with worker(tmp, "trainC", queue=TRAINING_QUEUE, env=env) as c:
            c.wait_for_log(READY, 300)
            twice = sent_twice(app, sessions, data, val)
            once = ended(twice, timeout_s)
            logs = lambda: survivor.log() + c.log()  # noqa: E731
            refused = wait_until(lambda: f"run {twice} is " in logs(), 60)
            executions = logs().count(f"run {twice}: version")
    app.close()
    with sessions() as s:
        versions = [v.version for v in registry.list_versions(s) if v.version.endswith(twice[:6])]
    survived = (
        stepped and by_heartbeat and failed_after < DEAD_AFTER_S + 10 * SWEEP_S
        and again.status == "succeeded" and same_config
        and once.status == "succeeded" and refused and executions == 1 and len(versions) == 1
    )  # fmt: skip
    unfinished = sum(r.status in ("queued", "running") for r in (dead, again, once))
    return {
        "fault": fault,
        "survived": survived,
        "exercised": stepped and holder in ("trainA@localhost", "trainB@localhost"),
        "lost": unfinished,  # runs that never ended
        "duplicated": max(0, executions - 1) + max(0, len(versions) - 1),
        "failed_after_s": round(failed_after, 1),
        "killed_status": dead.status,
        "retry_status": again.status,
        "repeat_refused": refused,
        "detail": (
            f"killed {holder} mid-epoch; failed by heartbeat in {failed_after:.1f} s "
            f"({dead.message.split(' (worker')[0]}); retry {again.status}; run sent twice: "
            f"{executions} execution(s), {len(versions)} version(s), repeat refused {refused}"
        ),
    }


def sent_twice(app: Any, sessions: Any, data: Path, val: Path) -> str:
    """A queued run whose message is sent twice (as a redelivery would); its id."""
    from models.recipe import Recipe
    from worker.app import FINE_TUNE_TASK, TRAINING_QUEUE
    from worker.runsubmit import start_run
    from worker.trainingdata import DataSpec

    spec = DataSpec(folders=[str(data)], val_folder=str(val))
    recipe = Recipe(epochs=1, batch_size=16, image_size=96, num_workers=0)
    run_id = start_run(app, sessions, spec, recipe, True, 600, HOUR)
    app.send_task(FINE_TUNE_TASK, kwargs={"run_id": run_id}, queue=TRAINING_QUEUE, task_id=run_id)
    return run_id

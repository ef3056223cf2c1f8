"""Fine-tuning through the training queue, promotion, and hot reload in a running worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from db import registry, runs
from db.tables import Result, TrainingRun
from harness.procs import READY, Proc, free_port, worker
from tests.conftest import real_data_or_skip

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
AUTH = ("ops", "s3cret-test")  # for the Flower this test starts


def small_real_set(dest: Path, n_per_class: int, start: int = 0) -> Path:
    """A Positive/Negative folder of symlinks to real photos (file numbers from `start`)."""
    data = real_data_or_skip()
    for cls in ("Positive", "Negative"):
        (dest / cls).mkdir(parents=True)
        for p in sorted((data / cls).glob("*.jpg"))[start : start + n_per_class]:
            (dest / cls / p.name).symlink_to(p)
    return dest


def classify_and_wait(sessions, refs: list[str], timeout: float = 120) -> list[Result]:
    from worker.app import app
    from worker.enqueue import submit

    sub = submit(app, sessions, refs)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as s:
            rows = list(s.scalars(select(Result).where(Result.request_id.in_(sub.request_ids))))
        if len(rows) == len(refs) and all(r.status != "queued" for r in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError("rows did not arrive")


FINETUNE_ARGS = ["--epochs", "1", "--batch-size", "16", "--image-size", "96", "--num-workers", "0"]


def start_finetune(data: Path, val: Path, env: dict[str, str]) -> str:
    """`crackq finetune` as a user runs it; returns the run id it prints."""
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "finetune", "--data", str(data),
         "--val-data", str(val), *FINETUNE_ARGS],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@dataclass
class Watched:
    """What the run row and Flower showed while the run went on."""

    run: TrainingRun
    statuses: list[str] = field(default_factory=list)
    progress_steps: set[tuple[object, object]] = field(default_factory=set)
    in_flower: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


def watch_run(sessions, run_id: str, flower_port: int, timeout: float = 600) -> Watched:
    """Poll the run row until it ends; ask Flower for the task's state while it runs."""
    watched: Watched | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as s:
            run = runs.get_run(s, run_id)
        watched = watched or Watched(run)
        watched.run = run
        if not watched.statuses or watched.statuses[-1] != run.status:
            watched.statuses.append(run.status)
        if run.progress.get("step"):
            watched.progress_steps.add((run.progress.get("epoch"), run.progress["step"]))
        if run.status == "running" and not watched.in_flower:
            # Operators see the same progress in Flower: the task's state meta.
            answer = requests.get(
                f"http://127.0.0.1:{flower_port}/api/task/info/{run_id}", auth=AUTH, timeout=5
            )
            watched.answers.append(answer.text)
            if answer.status_code == 200 and answer.json()["state"] == "PROGRESS":
                watched.in_flower.append(answer.json()["result"])
        if run.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert watched is not None
    return watched


def test_finetune_promote_and_hot_reload(tmp_path: Path, sessions) -> None:
    data = small_real_set(tmp_path / "train", 150)
    # 200 validation photos: the fewest the INT8 check accepts (models.quantize)
    val = small_real_set(tmp_path / "val", 100, start=6000)
    probe = [str(p) for p in sorted((real_data_or_skip() / "Positive").glob("*.jpg"))[5000:5010]]
    env = {
        "CRACKQ_ALLOWED_ROOTS": str(real_data_or_skip()),
        "CRACKQ_DATA_DIR": str(tmp_path / "state"),
    }
    # Two machines in effect: the inference worker shares no folder with the trainer and
    # gets the checkpoint from the artifact store (postgres, the default).
    inf_env = {**env, "CRACKQ_DATA_DIR": str(tmp_path / "inference-state")}
    port = free_port()
    flower = Proc(
        [sys.executable, "-m", "worker.cli", "flower", f"--port={port}"],
        tmp_path / "flower.log",
        env={"CRACKQ_FLOWER_BASIC_AUTH": ":".join(AUTH)},
    )
    with (
        flower,
        worker(tmp_path, "inf", env=inf_env) as inf,
        worker(tmp_path, "train", queue="training", env=env) as tr,
    ):
        inf.wait_for_log(READY, 120)
        tr.wait_for_log(READY, 120)
        flower.wait_for_log(r"Visit me at|Registered tasks", 60)
        before = classify_and_wait(sessions, probe)
        assert {r.model_version for r in before} == {"untrained-random-init"}

        watched = watch_run(sessions, start_finetune(data, val, env), port)
        run = watched.run
        assert run.status == "succeeded", (run.message, tr.log()[-3000:])
        assert "runtime ready" not in tr.log(), "a training worker loaded a model to serve"
        seen = watched.statuses
        assert seen[-2:] == ["running", "succeeded"] and seen[0] in ("queued", "running")
        assert len(watched.progress_steps) >= 2, watched.progress_steps
        in_flower = watched.in_flower
        assert in_flower, watched.answers[-3:]
        assert re.match(r"step: epoch 1/1 step \d+/\d+ loss \d\.\d{4} ", in_flower[0]), in_flower
        served = check_registered(sessions, run, env)
        switched = f"switched model untrained-random-init -> {run.model_version} ({served})"
        inf.wait_for_log(re.escape(switched), 30)
        fetched = r"fetched pg://artifact/\d+ into the model cache"
        assert re.search(fetched, inf.log()), inf.log()[-3000:]
        assert not list((tmp_path / "inference-state").glob("models/*.pt"))
        check_report(run, tmp_path / "report", env)
        after = classify_and_wait(
            sessions,
            probe + [str(p) for p in sorted(Path(probe[0]).parent.glob("*.jpg"))[5010:5030]],
        )
        assert {r.model_version for r in after} == {run.model_version}
        assert all(r.status == "succeeded" for r in after)


def check_report(run: TrainingRun, out: Path, env: dict[str, str]) -> None:
    """`crackq finetune report` fetches the run's files from the store, byte for byte."""
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "finetune", "report", run.run_id, "-o", str(out)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("training.png", "predictions.png", "metrics.json"):
        assert (out / name).read_bytes() == (Path(run.artifacts_dir) / name).read_bytes()


def check_registered(sessions, run: TrainingRun, env: dict[str, str]) -> str:
    """The run's artifacts, its promoted registry row and INT8 report; the serving it implies."""
    art = Path(run.artifacts_dir)
    for name in ("training.png", "predictions.png", "metrics.json"):
        assert (art / name).stat().st_size > 1000 or name == "metrics.json"
    with sessions() as s:
        version = registry.get(s, run.model_version)
        assert version.status == "promoted" and run.promoted
        assert {"accuracy", "auc", "f1"} <= set(version.metrics)
        assert len(version.sha256) == 64
    # The run quantised the model and checked INT8 against fp32 on its 200 photos; the
    # worker serves INT8 exactly when that check passed (whether it does for a model
    # this small depends on the CPU's bf16 training numerics).
    int8 = version.metrics["int8"]
    assert int8["photos"] == 200 and int8["calibration_photos"] == 300, int8
    print(f"\nINT8 check: {int8}")
    listed = subprocess.run(
        [sys.executable, "-m", "worker.cli", "models", "list"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert f"int8={'yes' if int8['passed'] else 'no'}" in listed.stdout, listed.stdout
    return "cpu-openvino-int8" if int8["passed"] else "cpu-openvino-bf16"

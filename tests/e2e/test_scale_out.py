"""Scale-out on one machine: three workers that share nothing but Redis, PostgreSQL and S3.

Two inference workers and a training worker run as separate processes, each with its own
data folder, as on three hosts with empty disks. The model reaches the inference workers
only through the artifact store, here a real S3-compatible server (moto) on loopback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from db import registry, runs
from harness.procs import READY, free_port, wait_until, worker
from harness.rows import counts
from harness.s3_server import aws_env, moto_s3
from harness.scrape import scrape, total
from tests.conftest import real_data_or_skip
from tests.e2e.test_finetune_e2e import FINETUNE_ARGS, small_real_set

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
BUCKET = "crackq-scale-out"


def wave(sessions, refs: list[str], tag: str) -> list[str]:
    """Submit `refs` as a producer would; their request ids."""
    from worker.app import app
    from worker.enqueue import submit

    return submit(app, sessions, refs, batch_id=tag).request_ids


def versions(engine: Any, ids: list[str]) -> set[str]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT model_version FROM results WHERE request_id = ANY(:ids)"),
            {"ids": ids},
        )
        return {r[0] for r in rows}


@pytest.mark.timeout(900)
def test_two_inference_workers_and_a_trainer_share_only_the_services(
    tmp_path: Path, sessions, engine
) -> None:
    pytest.importorskip("moto")
    data = real_data_or_skip()
    photos = sorted(str(p) for p in data.glob("*/*.jpg"))[::40]  # 400 of both classes
    train = small_real_set(tmp_path / "train", 60)
    val = small_real_set(tmp_path / "val", 30, start=6000)
    with moto_s3(BUCKET) as endpoint:
        common = {
            **aws_env(tmp_path),
            "CRACKQ_ALLOWED_ROOTS": str(data),
            "CRACKQ_ARTIFACT_STORE": f"s3://{BUCKET}/crackq",
            "CRACKQ_S3_ENDPOINT_URL": endpoint,
            "CRACKQ_INT8": "off",
            "CRACKQ_MODEL_POLL_S": "2",
            "CRACKQ_BATCH_SIZE": "16",
        }
        ports = [free_port(), free_port()]
        envs = [
            {**common, "CRACKQ_DATA_DIR": str(tmp_path / f"host{i}"), "CRACKQ_METRICS_PORT": str(p)}
            for i, p in enumerate(ports)
        ]
        trainer_env = {**common, "CRACKQ_DATA_DIR": str(tmp_path / "trainer-host")}
        with (
            worker(tmp_path, "infA", env=envs[0]) as a,
            worker(tmp_path, "infB", env=envs[1]) as b,
            worker(tmp_path, "train", queue="training", env=trainer_env) as tr,
        ):
            for w in (a, b, tr):
                w.wait_for_log(READY, 300)
            first = wave(sessions, photos[:200], "scale-out-1")
            assert wait_until(lambda: counts(engine, first)[1] == 200, 300)
            assert versions(engine, first) == {"untrained-random-init"}

            out = subprocess.run(
                [sys.executable, "-m", "worker.cli", "finetune", "--data", str(train),
                 "--val-data", str(val), *FINETUNE_ARGS],
                capture_output=True, text=True, timeout=60, env={**os.environ, **trainer_env},
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            run_id = out.stdout.strip()
            assert wait_until(lambda: run_state(sessions, run_id) != "running", 600, step=1)
            with sessions() as s:
                run = runs.get_run(s, run_id)
                assert run.status == "succeeded", (run.message, tr.log()[-3000:])
                version = registry.get(s, run.model_version)
            assert version.status == "promoted", version.status
            assert version.checkpoint_uri.startswith(f"s3://{BUCKET}/crackq/"), (
                version.checkpoint_uri
            )
            for w in (a, b):  # each host fetched it from S3 and switched, no restart
                w.wait_for_log(re.escape(f"-> {run.model_version} ("), 60)
                assert re.search(r"fetched s3://\S+ into the model cache", w.log()), w.log()[-2000:]

            second = wave(sessions, photos[200:], "scale-out-2")
            assert wait_until(lambda: counts(engine, second)[1] == 200, 300)
            assert versions(engine, second) == {run.model_version}
            served = [
                total(scrape(f"http://127.0.0.1:{p}"), "crackq_rows_stored_total") for p in ports
            ]
            print(f"\nrows stored per inference worker: {served}; model {run.model_version}")

    stored, distinct, rows, _ = counts(engine, first + second)
    assert (stored, distinct, rows) == (400, 400, 400), "lost or duplicated rows"
    assert all(n > 0 for n in served), f"a worker got no photos: {served}"
    assert sum(served) == 400, served
    for i in range(2):  # the trainer's disk was never theirs: no checkpoint path but the cache
        assert not list((tmp_path / f"host{i}").glob("models/*.pt"))


def run_state(sessions, run_id: str) -> str:
    with sessions() as s:
        status = runs.get_run(s, run_id).status
    return "running" if status in ("queued", "running") else status

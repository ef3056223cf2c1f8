"""Scale-out on one machine: one inference worker vs two, a hot switch under load, store speed.

Two inference workers and a trainer run as separate processes, each with its own data folder,
sharing only Redis, PostgreSQL and a moto S3 server on loopback (as tests/e2e/test_scale_out.py).
JSON lines: throughput of one worker, then two, on the same photos; a run of --total photos
with a fine-tune during it and its promotion in the middle (lost, duplicated, the time from
the promotion to both workers serving it); each store's download speed into an empty cache.
    .venv/bin/python -m benchmarks.run --suite scaleout [--n 1000] [--total 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks.services import Photos
from benchmarks.store_speed import fetch_speeds, logged_fetches
from harness.procs import READY, Proc, free_port, wait_until, worker
from harness.rows import batch_count, counts, final_rows
from harness.s3_server import aws_env, moto_s3
from harness.scrape import scrape, total

BUCKET = "crackq-bench"
FINETUNE = ["--epochs", "1", "--batch-size", "16", "--image-size", "96", "--num-workers", "0"]
CORES_NOTE = (
    "every process shares the same cores: a second worker adds no CPU, so two cannot double"
)


class Cluster:
    """Three worker processes as three hosts with empty disks, and what they are asked to do."""

    def __init__(self, tmp: Path, photos: Photos, engine: Engine, endpoint: str, args: Any) -> None:
        self.tmp, self.photos, self.engine, self.args = tmp, photos, engine, args
        self.endpoint = endpoint
        self.common = {
            **aws_env(tmp),
            "CRACKQ_ALLOWED_ROOTS": str(photos.root),
            "CRACKQ_ARTIFACT_STORE": f"s3://{BUCKET}/crackq",
            "CRACKQ_S3_ENDPOINT_URL": endpoint,
            "CRACKQ_INT8": "off",  # no INT8 graph: a quick run; serving is bf16/fp32 either way
            "CRACKQ_MODEL_POLL_S": str(args.poll_s),
        }
        self.ports = [free_port(), free_port()]
        self.trainer_env = self.env("trainer-host", free_port())

    def env(self, host: str, port: int) -> dict[str, str]:
        return {
            **self.common,
            "CRACKQ_DATA_DIR": str(self.tmp / host),
            "CRACKQ_METRICS_PORT": str(port),
        }

    def run(self) -> list[dict[str, Any]]:
        with ExitStack() as stack:
            a = stack.enter_context(worker(self.tmp, "infA", env=self.env("hostA", self.ports[0])))
            trainer = stack.enter_context(
                worker(self.tmp, "train", queue="training", env=self.trainer_env)
            )
            for w in (a, trainer):
                w.wait_for_log(READY, 600)
            same = self.photos.cycle(0, self.args.n)
            for path in same:  # both rounds read these files from the page cache
                Path(path).read_bytes()
            self.through(self.photos.cycle(self.args.n + self.args.total, 64), "warm-1")
            one = self.throughput(same, self.ports[:1], "one-worker")
            b = stack.enter_context(worker(self.tmp, "infB", env=self.env("hostB", self.ports[1])))
            b.wait_for_log(READY, 600)
            self.through(self.photos.cycle(self.args.n + self.args.total + 64, 64), "warm-2")
            two = self.throughput(same, self.ports, "two-workers")
            two["speedup"] = round(two["images_per_s"] / one["images_per_s"], 2)
            two["note"] = CORES_NOTE
            switch = self.hot_switch(a, b)
        cache = self.tmp / "hostA" / "cache" / "models" / f"{switch.pop('sha256')}.pt"
        from worker.runtime import get_sessions

        speeds = fetch_speeds(
            cache, switch.pop("checkpoint_uri"), cache.stem, get_sessions(), self.endpoint, self.tmp
        )
        return [one, two, switch, *speeds]

    def through(self, refs: list[str], tag: str) -> list[str]:
        """Submit `refs`, wait until every one has its row; the request ids."""
        from worker.app import app
        from worker.enqueue import submit
        from worker.runtime import get_sessions

        ids = submit(app, get_sessions(), refs, batch_id=tag).request_ids
        if not wait_until(lambda: final_rows(self.engine, ids) == len(ids), 300 + len(ids), 0.2):
            raise TimeoutError(f"{tag}: {final_rows(self.engine, ids)}/{len(ids)} rows")
        return ids

    def rows_by_worker(self, ports: list[int]) -> list[float]:
        return [total(scrape(f"http://127.0.0.1:{p}"), "crackq_rows_stored_total") for p in ports]

    def throughput(self, refs: list[str], ports: list[int], tag: str) -> dict[str, Any]:
        before = self.rows_by_worker(ports)
        t0 = time.monotonic()
        ids = self.through(refs, tag)
        seconds = time.monotonic() - t0
        after = self.rows_by_worker(ports)
        stored, distinct, rows, _ = counts(self.engine, ids)
        return {
            "bench": "scaleout",
            "part": "throughput",
            "workers": len(ports),
            "photos": len(ids),
            "seconds": round(seconds, 1),
            "images_per_s": round(stored / seconds, 1),
            "rows_per_worker": [int(x - y) for x, y in zip(after, before, strict=True)],
            "duplicated": rows - distinct,
        }

    def hot_switch(self, a: Proc, b: Proc) -> dict[str, Any]:
        """--total photos; a fine-tune meanwhile; its version promoted once half are stored."""
        from db import registry, runs
        from worker.app import app
        from worker.enqueue import submit
        from worker.runtime import get_sessions

        sessions, n = get_sessions(), self.args.total
        run_id = self.crackq("finetune", "--data", str(self.train_set("train", 0)),
                             "--val-data", str(self.train_set("val", 6000)), "--no-promote", *FINETUNE)  # fmt: skip
        before = self.rows_by_worker(self.ports)
        t0 = time.monotonic()
        refs = self.photos.cycle(self.args.n, n)
        ids = submit(app, sessions, refs, batch_id="scaleout-switch").request_ids

        def run_row() -> Any:
            with sessions() as s:
                return runs.get_run(s, run_id)

        assert wait_until(lambda: run_row().status not in ("queued", "running"), 1800, 1)
        run = run_row()
        if run.status != "succeeded":
            raise RuntimeError(f"fine-tune {run_id} {run.status}: {run.message}")
        trained_s, rows_when_trained = time.monotonic() - t0, final_rows(self.engine, ids)
        wait_until(lambda: final_rows(self.engine, ids) >= n // 2, 600 + n, 0.2)
        self.crackq(
            "models", "promote", run.model_version, "--reason", "scaleout bench", "--by", "bench"
        )
        with sessions() as s:
            version = registry.get(s, run.model_version)
            assert version.promoted_at is not None, version.status
            promoted_at = version.promoted_at.timestamp()
            uri, sha = version.checkpoint_uri, version.sha256
        rows_at_promotion = final_rows(self.engine, ids)
        serving = [self.serving_after(p, run.model_version, promoted_at) for p in self.ports]
        done = wait_until(lambda: final_rows(self.engine, ids) == n, 600 + n, 0.5)
        seconds = time.monotonic() - t0
        stored, distinct, rows, _ = counts(self.engine, ids)
        after = self.rows_by_worker(self.ports)
        return {
            "bench": "scaleout", "part": "hot_switch", "photos": n, "finished": done,
            "seconds": round(seconds, 1), "images_per_s": round(stored / seconds, 1),
            "stored": stored, "lost": n - distinct, "duplicated": rows - distinct,
            "succeeded": batch_count(self.engine, "scaleout-switch", "succeeded"),
            "rows_per_worker": [int(x - y) for x, y in zip(after, before, strict=True)],
            "rows_per_version": self.rows_per_version(ids),
            "fine_tune_s": round(trained_s, 1), "rows_when_trained": rows_when_trained,
            "rows_at_promotion": rows_at_promotion, "new_version": run.model_version,
            "switch_in_middle": 0 < rows_at_promotion < n,
            "poll_s": self.args.poll_s,
            "promotion_to_serving_s": [round(s, 2) for s in serving],
            "promotion_to_both_serving_s": round(max(serving), 2),
            "downloads": [logged_fetches(w.log()) for w in (a, b)],
            "checkpoint_uri": uri, "sha256": sha,
        }  # fmt: skip

    def serving_after(self, port: int, version: str, since: float) -> float:
        """Seconds from `since` (the promotion) until the worker on `port` says it serves `version`."""
        url = f"http://127.0.0.1:{port}"
        if not wait_until(
            lambda: total(scrape(url), "crackq_model_info", version=version) > 0, 300, 0.1
        ):
            raise TimeoutError(f"{url} never served {version}")
        return time.time() - since

    def rows_per_version(self, ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT model_version, count(*) FROM results WHERE request_id = ANY(:ids) GROUP BY 1"
                ),
                {"ids": ids},
            )
            return {str(v): int(c) for v, c in found}

    def train_set(self, name: str, start: int) -> Path:
        """Positive/Negative folders of links to --per-class photos from file number `start`."""
        dest = self.tmp / name
        for cls in ("Positive", "Negative"):
            (dest / cls).mkdir(parents=True)
            files = sorted((self.photos.root / cls).glob("*.jpg"))
            first = start % max(1, len(files) - self.args.per_class)  # few synthetic photos
            for p in files[first : first + self.args.per_class]:
                (dest / cls / p.name).symlink_to(p)
        return dest

    def crackq(self, *argv: str) -> str:
        """`crackq ARGV` as an operator on the trainer's host runs it; what it printed."""
        out = subprocess.run(
            [sys.executable, "-m", "worker.cli", *argv], capture_output=True, text=True, timeout=120,
            env={**os.environ, **self.trainer_env},
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"crackq {' '.join(argv)}: {out.stderr[-2000:]}")
        return out.stdout.strip()


def main(argv: list[str], prog: str) -> int:
    """The scaleout suite on its own services; one JSON line per measurement."""
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, default=1000, help="photos per throughput round (default 1000)"
    )
    ap.add_argument(
        "--total", type=int, default=5000, help="photos of the hot-switch run (default 5000)"
    )
    ap.add_argument(
        "--per-class", type=int, default=60, help="training photos per class (default 60)"
    )
    ap.add_argument("--poll-s", type=float, default=5.0, help="CRACKQ_MODEL_POLL_S (default 5)")
    args = ap.parse_args(argv)
    from benchmarks import services

    services.point_settings_here()
    with tempfile.TemporaryDirectory(prefix="crackq-scaleout-") as name:
        tmp = Path(name)
        os.environ.update(aws_env(tmp))  # this process fetches from S3 too
        with services.bench_services(2000) as (photos, engine), moto_s3(BUCKET) as endpoint:
            rows = Cluster(tmp, photos, engine, endpoint, args).run()
    for row in rows:
        print(json.dumps(row))
    switch = rows[2]
    return 0 if switch["finished"] and switch["lost"] == 0 and switch["duplicated"] == 0 else 1

"""`crackq demo`: the whole loop on one machine — train, promote, classify through the queue."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from db import results as results_db
from db.session import make_engine, make_sessionmaker
from models.classifier import CLASSES
from models.datasets import Sample, from_folder, grouped_split
from models.recipe import Recipe
from models.synthetic import make_synthetic_dataset
from worker import migrate
from worker.app import create_app
from worker.commands import wait_for
from worker.embedded import open_services, redact
from worker.enqueue import submit
from worker.finetune import start_run
from worker.launch import worker_launch
from worker.settings import Settings
from worker.training_commands import wait_run
from worker.trainingdata import DataSpec


@dataclass(frozen=True)
class DemoPlan:
    data: Path | None
    train_images: int
    epochs: int
    classify: int


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run_demo(settings: Settings, plan: DemoPlan) -> int:
    work = (settings.data_dir / "demo").resolve()
    work.mkdir(parents=True, exist_ok=True)
    with open_services(settings) as (broker, database):
        say(f"broker {redact(broker)}, database {redact(database)}")
        if migrate.create_database_if_missing(database):
            say("created the database")
        migrate.upgrade(database)
        samples = demo_samples(plan, settings.data_dir.resolve())
        train, held_out = choose(samples, plan)
        manifest = write_manifest(work / "train.csv", train)
        env = {
            "CRACKQ_BROKER_URL": broker,
            "CRACKQ_DATABASE_URL": database,
            "CRACKQ_EMBEDDED": "never",
            "CRACKQ_MODEL_POLL_S": "1",
            "CRACKQ_DATA_DIR": str(settings.data_dir.resolve()),
            "CRACKQ_ALLOWED_ROOTS": str(Path(held_out[0][0]).parent.parent),
        }
        local = settings.model_copy(
            update={"broker_url": SecretStr(broker), "database_url": SecretStr(database)}
        )
        app = create_app(local)
        sessions = make_sessionmaker(make_engine(database, pool_size=2))
        procs = [start_worker(local, q, env, work) for q in ("training", "inference")]
        try:
            return loop(app, sessions, manifest, held_out, plan, work)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            app.close()


def loop(
    app,
    sessions: sessionmaker[Session],
    manifest: Path,
    held_out: list[Sample],
    plan: DemoPlan,
    work: Path,
) -> int:
    # CPU-sized: 112 px trains ~4x faster than 224; the checkpoint records its input size,
    # so the inference worker preprocesses to match.
    recipe = Recipe(
        epochs=plan.epochs, batch_size=32, num_workers=1, val_fraction=0.2, image_size=112
    )
    say(f"training on {manifest} ({plan.epochs} epoch(s), CPU-sized recipe)")
    run_id = start_run(
        app, sessions, DataSpec(manifests=[str(manifest)]), recipe, auto_promote=True
    )
    run = wait_run(sessions, run_id)
    if run.status != "succeeded":
        say(f"training run {run_id} {run.status}: {run.message}")
        return 1
    m = run.metrics
    say(
        f"run {run_id} -> model {run.model_version}: val AUC {m['auc']:.4f}, accuracy {m['at_chosen']['accuracy']:.4f} at the chosen "
        f"threshold {m['chosen_threshold']:.3g}; "
        f"{run.message}"
    )
    wait_serving(app, run.model_version)
    say(f"sending {len(held_out)} held-out photos through the queue")
    sub = submit(app, sessions, [p for p, _ in held_out], batch_id=f"demo-{run_id}")
    t0 = time.perf_counter()
    wait_for(sessions, sub.request_ids, timeout=1800)
    elapsed = time.perf_counter() - t0
    with sessions() as session:
        rows = {
            r.request_id: r
            for r in results_db.query_results(session, request_ids=sub.request_ids, limit=None)
        }
    report(
        held_out, [rows.get(i) for i in sub.request_ids], elapsed, sub.batch_id, run.artifacts_dir
    )
    return 0


def demo_samples(plan: DemoPlan, data_dir: Path) -> list[Sample]:
    if plan.data is not None:
        return from_folder(plan.data)
    folder = data_dir / "demo-data"
    per_class = (plan.train_images + plan.classify) // 2 + 200
    say(f"no --data: generating {2 * per_class} synthetic crack / no-crack images in {folder}")
    return make_synthetic_dataset(folder, per_class, seed=0)


def choose(samples: list[Sample], plan: DemoPlan) -> tuple[list[Sample], list[Sample]]:
    """Training photos and held-out photos from other file-number groups, balanced by class."""
    parts = grouped_split(samples, 0.3, seed=1)
    return balanced(parts.train, plan.train_images), balanced(parts.val, plan.classify)


def balanced(samples: Sequence[Sample], n: int) -> list[Sample]:
    by_class = [[s for s in samples if s[1] == c] for c in range(len(CLASSES))]
    per = max(1, n // len(CLASSES))
    return [s for group in by_class for s in group[:per]]


def write_manifest(path: Path, samples: Sequence[Sample]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows((p, CLASSES[y]) for p, y in samples)
    return path


def start_worker(
    settings: Settings, queue: str, env: dict[str, str], work: Path
) -> subprocess.Popen[bytes]:
    launch = worker_launch(settings, queue, hostname=f"demo-{queue}@%h", loglevel="WARNING")
    path = work / f"{queue}-worker.log"
    say(f"starting a {queue} worker (log: {path})")
    with open(path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            launch.argv, env={**os.environ, **env, **launch.env}, stdout=log, stderr=log
        )


def wait_serving(app, version: str | None, timeout: float = 180) -> None:
    """Until every inference worker reports `version` (hot reload, no restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.inspect(timeout=1.0)._request("crackq_model") or {}
        versions = {
            name: r.get("version")
            for name, r in replies.items()
            if name.startswith("demo-inference")
        }
        if versions and all(v == version for v in versions.values()):
            say(f"inference worker switched to {version} without a restart")
            return
        time.sleep(1)
    raise RuntimeError(f"the inference worker did not switch to {version} within {timeout:.0f} s")


def report(
    held_out: list[Sample], rows: list, elapsed: float, batch_id: str, artifacts: str | None
) -> None:
    tp = fp = tn = fn = failed = 0
    for (_, y), row in zip(held_out, rows, strict=True):
        if row is None or row.status != "succeeded":
            failed += 1
            continue
        pred = CLASSES.index(row.label)
        tp += pred == 1 and y == 1
        tn += pred == 0 and y == 0
        fp += pred == 1 and y == 0
        fn += pred == 0 and y == 1
    n = tp + tn + fp + fn
    print(
        f"\nclassified {n} held-out photos through Redis -> Celery -> PostgreSQL in {elapsed:.1f} s "
        f"({n / max(elapsed, 1e-9):.1f} img/s); failed: {failed}"
    )
    print(f"accuracy {(tp + tn) / max(n, 1):.4f}")
    print("confusion matrix (rows = truth, columns = prediction):")
    print(
        f"               no_crack  crack\n  no_crack   {tn:>9}  {fp:>5}\n  crack      {fn:>9}  {tp:>5}"
    )
    print("\nwhere to look:")
    print(f"  crackq results --batch-id {batch_id}      (or SELECT * FROM crackq_results_v1)")
    print(f"  training artifacts: {artifacts} (training.png, predictions.png, metrics.json)")
    print("  crackq models list; crackq flower  (Flower dashboard, while workers run)")

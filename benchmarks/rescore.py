"""What re-scoring costs live traffic: live p50 latency with and without a concurrent re-score.

One `crackq worker -Q inference` serves a promoted checkpoint (random init, served as a
worker serves it: OpenVINO on this CPU when installed). `--rows` stored rows (succeeded,
answered by the promoted version, their photos real files) are inserted, then re-scored
with a second version by `crackq rescore` (the CLI, default throttle) while single photos
arrive one at a time at `--rate`/s. Their p50 latency is compared with the same trickle
before the re-score and after it (the mean of the two, so a drift of a shared host's
load counts against neither side). The busy trickle starts once the worker has loaded
the second version (a one-off load, timed apart as `second_model_load_s`).
Target: p50 with the re-score <= 2x without. One JSON line per phase, then a summary.
Run: python -m benchmarks.run --suite rescore [--rows 2000] [--rate 4] [--trickle-s 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks import services
from benchmarks.speed import host_info
from benchmarks.stats import message_rows, utcnow
from benchmarks.worker_bench import trickle
from harness.procs import READY, ROOT, Proc, worker
from harness.rows import wait_rows

log = logging.getLogger(__name__)
TARGET = 2.0
LIVE, OTHER = "bench-live", "bench-rescore"


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=2000, help="stored rows to re-score")
    ap.add_argument("--rate", type=float, default=4.0, help="live photos per second")
    ap.add_argument("--trickle-s", type=float, default=30.0, help="seconds of each trickle")
    ap.add_argument("--window", type=int, help="crackq rescore --window (default: the setting)")
    return ap.parse_args(argv)


def main(argv: list[str], prog: str) -> int:
    args = parse_args(argv, prog)
    services.point_settings_here()  # before anything reads crackq's settings
    host = host_info()
    found: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="crackq-rescore-") as name,
        services.bench_services(args.rows) as (photos, engine),
    ):
        tmp = Path(name)
        register(engine, tmp)
        env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root), "CRACKQ_BATCH_SIZE": "32"}
        with worker(tmp, "rescore-bench", env=env) as w:
            w.wait_for_log(READY, 300)
            warm_up(engine, photos)
            found["alone"] = emit(phase("live_alone", trickle_at(engine, photos, 0, args)))
            since = utcnow()
            seed(engine, photos, args.rows)
            found["busy"] = emit(busy(engine, photos, args, w, tmp, since))
            found["after"] = emit(phase("live_after", trickle_at(engine, photos, 20_000, args)))
    emit(summary(found, args, photos.synthetic, host))
    return 0


def emit(line: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(line), flush=True)
    return line


def phase(name: str, measured: dict[str, Any]) -> dict[str, Any]:
    return {**measured, "bench": name}


def trickle_at(engine: Engine, photos: Any, first: int, args: argparse.Namespace) -> dict:
    return trickle(engine, photos, first, args.rate, args.trickle_s, f"live-{first}")


def register(engine: Engine, tmp: Path) -> None:
    """Two random-init checkpoints (different weights), the first promoted."""
    import torch

    from db import registry
    from db.session import make_sessionmaker
    from models.checkpoints import save_checkpoint
    from models.network import build_model

    with make_sessionmaker(engine)() as s, s.begin():
        for seed_, version in enumerate((LIVE, OTHER)):
            path = tmp / f"{version}.pt"
            torch.manual_seed(seed_)
            sha = save_checkpoint(path, build_model(), version=version)
            registry.register(
                s, version=version, checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
            )
        registry.promote(s, LIVE, by="benchmark")


def warm_up(engine: Engine, photos: Any) -> None:
    from worker.app import app
    from worker.enqueue import send

    send(app, message_rows("warmup", photos.cycle(0, 64)))
    wait_rows(engine, "warmup", 64, timeout_s=300)


def seed(engine: Engine, photos: Any, n: int) -> None:
    """`n` stored rows answered by the promoted version, as live traffic would leave them."""
    refs = photos.cycle(40_000, n)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO results (request_id, image_ref, batch_id, status, label, "
                "confidence, crack_probability, model_version, mode, submitted_at, finished_at) "
                "SELECT 'stored-' || i, ref, 'stored', 'succeeded', 'no_crack', 0.9, 0.1, "
                ":v, 'patch', now(), now() FROM unnest(:refs) WITH ORDINALITY AS t(ref, i)"
            ),
            {"refs": refs, "v": LIVE},
        )


def busy(
    engine: Engine, photos: Any, args: argparse.Namespace, w: Proc, tmp: Path, since: Any
) -> dict[str, Any]:
    """`crackq rescore` of the stored rows, and a live trickle while it runs."""
    argv = [sys.executable, "-m", "worker.cli", "rescore", "--since", since.isoformat()]
    argv += ["--model", OTHER] + (["--window", str(args.window)] if args.window else [])
    out = tmp / "rescore.out"
    t0 = time.monotonic()
    with open(out, "wb") as sink:
        cli = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            w.wait_for_log(f"loaded {OTHER} for re-scoring", 300)
            loaded_s = time.monotonic() - t0
            live = trickle_at(engine, photos, 10_000, args)
            running_throughout = cli.poll() is None
            cli.wait(timeout=600 + args.rows)
        finally:
            if cli.poll() is None:
                cli.kill()
    seconds = time.monotonic() - t0
    done = rescored(engine)
    return {
        **live,
        "bench": "live_during_rescore",
        "rescore": {
            "rows": args.rows,
            "rescored": done["rows"],
            "rows_per_s": round(done["rows"] / done["span_s"], 1) if done["span_s"] else None,
            "seconds_with_load": round(seconds, 1),
            "second_model_load_s": round(loaded_s, 1),
            "exit_code": cli.returncode,
            "last_line": out.read_text().strip().splitlines()[-1:],
            "running_throughout_trickle": running_throughout,
        },
    }


def rescored(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), extract(epoch FROM max(scored_at) - min(scored_at)) "
                "FROM result_scores WHERE source = 'rescore'"
            )
        ).one()
    return {"rows": int(row[0]), "span_s": float(row[1] or 0.0)}


def summary(
    found: dict[str, dict[str, Any]], args: argparse.Namespace, synthetic: bool, host: dict
) -> dict[str, Any]:
    alone = [found[k].get("p50_ms") for k in ("alone", "after")]
    base = sum(alone) / 2 if all(alone) else None  # type: ignore[arg-type]
    during = found["busy"].get("p50_ms")
    ratio = round(during / base, 2) if base and during else None
    return {
        "bench": "rescore_summary",
        "rows": args.rows,
        "live_rate_per_s": args.rate,
        "live_p50_ms_alone": alone[0],
        "live_p50_ms_after": alone[1],
        "live_p50_ms_during_rescore": during,
        "live_p95_ms_during_rescore": found["busy"].get("p95_ms"),
        "ratio": ratio,
        "target": TARGET,
        "meets_target": ratio is not None and ratio <= TARGET,
        "rescore_rows_per_s": found["busy"]["rescore"]["rows_per_s"],
        "photos": "synthetic" if synthetic else "real",
        **host,
    }

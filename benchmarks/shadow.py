"""What shadow scoring costs: e2e images/s of one worker without and with a shadow version.

One `crackq worker -Q inference` serves a promoted checkpoint; the same photos (new
request ids each phase) go through it three times: shadow off, shadow on every photo
(`crackq models shadow V --fraction 1`), shadow off again. A phase is timed from its first
message sent to its last row stored (with the shadow on: to its last shadow score). The
ratio is the shadowed phase's images/s over the mean of the two phases around it, so a
drift of the shared host's load counts against neither side. Target: >= 0.45.
Run: python -m benchmarks.run --suite shadow [--n 1000] [--int8]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks import services
from benchmarks.speed import host_info
from benchmarks.stats import message_rows
from harness.procs import READY, Proc, worker
from harness.rows import batch_count

log = logging.getLogger(__name__)
TARGET = 0.45
LIVE, SHADOW = "bench-live", "bench-shadow"


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000, help="photos per phase (default 1000)")
    ap.add_argument("--warmup", type=int, default=96, help="photos before the first phase")
    ap.add_argument(
        "--int8", action="store_true", help="both checkpoints carry INT8 graphs (served so)"
    )
    return ap.parse_args(argv)


def main(argv: list[str], prog: str) -> int:
    args = parse_args(argv, prog)
    services.point_settings_here()  # before anything reads crackq's settings
    host = host_info()
    with (
        tempfile.TemporaryDirectory(prefix="crackq-shadow-") as name,
        services.bench_services(args.n) as (photos, engine),
    ):
        tmp = Path(name)
        register(engine, tmp, args.int8)
        env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root), "CRACKQ_BATCH_SIZE": "32"}
        with worker(tmp, "shadow-bench", env=env) as w:
            w.wait_for_log(READY, 300)
            phase(engine, photos, "warmup", args.warmup, shadowed=False)
            found = [emit(phase(engine, photos, "shadow_off", args.n, shadowed=False))]
            switch(engine, w, on=True)
            found.append(emit(phase(engine, photos, "shadow_on", args.n, shadowed=True)))
            switch(engine, w, on=False)
            found.append(emit(phase(engine, photos, "shadow_off_after", args.n, shadowed=False)))
            serving = served(w.log())
    off = (found[0]["images_per_s"] + found[2]["images_per_s"]) / 2
    ratio = round(found[1]["images_per_s"] / off, 3) if off else None
    emit(
        {
            "bench": "shadow_summary",
            "images_per_s_off": round(off, 2),
            "images_per_s_on": found[1]["images_per_s"],
            "ratio": ratio,
            "target": TARGET,
            "meets_target": ratio is not None and ratio >= TARGET,
            "serving": serving,
            "photos": "synthetic" if photos.synthetic else "real",
            **host,
        }
    )
    return 0


def emit(line: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(line), flush=True)
    return line


def register(engine: Engine, tmp: Path, int8: bool) -> None:
    """Two random-init checkpoints (different weights), the first promoted."""
    import torch

    from db import registry
    from db.session import make_sessionmaker
    from models.checkpoints import save_checkpoint
    from models.network import build_model

    with make_sessionmaker(engine)() as s, s.begin():
        for seed, version in enumerate((LIVE, SHADOW)):
            path = tmp / f"{version}.pt"
            if int8:
                from harness import int8_model

                made = int8_model.checkpoint(tmp, version=version, seed=seed)
                if made is None:
                    raise SystemExit("--int8: this host would not serve INT8 (see CRACKQ_INT8)")
                path = made
                sha = (path.parent / f"{path.name}.sha256").read_text().split()[0]
            else:
                torch.manual_seed(seed)
                sha = save_checkpoint(path, build_model(), version=version)
            registry.register(
                s, version=version, checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
            )
        registry.promote(s, LIVE, by="benchmark")


def switch(engine: Engine, w: Proc, on: bool) -> None:
    """Shadow every photo, or nothing; back once the worker's log says it follows."""
    from db import shadow
    from db.session import make_sessionmaker

    said = f"shadowing {SHADOW} on 1 of live photos" if on else f"shadow {SHADOW} stopped"
    before = w.log().count(said)
    with make_sessionmaker(engine)() as s, s.begin():
        if on:
            shadow.start(s, SHADOW, 1.0, "benchmark")
        else:
            shadow.stop(s, "benchmark")
    deadline = time.monotonic() + 300
    while w.log().count(said) <= before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker never said {said!r}:\n{w.log()[-3000:]}")
        time.sleep(0.2)


def phase(engine: Engine, photos: Any, name: str, n: int, shadowed: bool) -> dict[str, Any]:
    """`n` photos sent at once; timed until every row (and shadow score) is stored."""
    from worker.app import app
    from worker.enqueue import send

    batch = f"shadow-bench-{name}"
    t0 = time.monotonic()
    send(app, message_rows(batch, photos.cycle(0, n)))
    deadline = t0 + 120 + n
    while time.monotonic() < deadline:
        rows = batch_count(engine, batch)
        scored = shadow_count(engine, batch) if shadowed else 0
        if rows >= n and (not shadowed or scored >= n):
            break
        time.sleep(0.1)
    seconds = time.monotonic() - t0
    return {
        "bench": name,
        "images": n,
        "rows": rows,
        "shadow_scores": scored,
        "seconds": round(seconds, 2),
        "images_per_s": round(rows / seconds, 2),
        "timed_out": rows < n or (shadowed and scored < n),
    }


def shadow_count(engine: Engine, batch: str) -> int:
    with engine.connect() as conn:
        n = conn.scalar(
            text(
                "SELECT count(*) FROM shadow_scores s JOIN results r USING (request_id) "
                "WHERE r.batch_id = :b"
            ),
            {"b": batch},
        )
    return int(n or 0)


def served(log_text: str) -> str:
    """How the worker served its model, from its start-up line."""
    for line in log_text.splitlines():
        if "runtime ready: model" in line:
            return line.split("runtime ready: ", 1)[1].strip()
    return "unknown"

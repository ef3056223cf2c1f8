"""Crack maps under load: tiles/s through the queue, fairness to single photos, 50 MP memory.

Three measurements, one JSON line each, then a summary line:
  - `map_throughput`: K big mosaics (real patches) through a real `crackq worker`; tiles/s
    from the rows' timestamps, against the served model's raw images/s measured in the
    same run (`model`, a fresh process as the speed suite starts it);
  - `map_fairness`: the same worker mapping big photos while single 227 px photos arrive
    one at a time; their p50 latency against the same trickle with no maps, and against
    the model's single-image latency;
  - `map_memory`: one 50-megapixel JPEG decoded and mapped in a fresh process; its peak
    RSS growth.
Run: python -m benchmarks.run --suite mapload [--photos 6] [--trickle-s 20] [--rate 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks import model_speed, services
from benchmarks.speed import _served, host_info
from benchmarks.stats import message_rows
from benchmarks.worker_bench import trickle
from harness import int8_model
from harness.mosaics import build_mosaic, held_out_patches, save_mosaic
from harness.procs import READY, ROOT, worker
from harness.rows import wait_rows

log = logging.getLogger(__name__)
PATCH = 227


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", type=int, default=6, help="big photos per phase")
    ap.add_argument("--rows", type=int, default=13, help="patch rows of each mosaic")
    ap.add_argument("--cols", type=int, default=17, help="patch columns of each mosaic")
    ap.add_argument("--overlap", type=float, default=0.0, help="CRACKQ_MAP_OVERLAP of the worker")
    ap.add_argument("--rate", type=float, default=4.0, help="single photos per second")
    ap.add_argument("--trickle-s", type=float, default=20.0)
    ap.add_argument("--skip", default="", help="comma list of throughput,fairness,memory")
    return ap.parse_args(argv)


def main(argv: list[str], prog: str) -> int:
    args = parse_args(argv, prog)
    services.point_settings_here()  # before anything reads crackq's settings
    skip = set(filter(None, args.skip.split(",")))
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="crackq-mapload-") as name:
        tmp = Path(name)
        int8 = int8_model.checkpoint(tmp)
        out["model"] = {"bench": "model", **model_speed.measure(*_served(), int8)}
        emit(out["model"])
        if "memory" not in skip:
            out["map_memory"] = memory(int8, tmp)
            emit(out["map_memory"])
        if not {"throughput", "fairness"} <= skip:
            with services.bench_services(200) as (photos, engine):
                out.update(queue_runs(args, skip, photos, engine, tmp, int8))
    emit(summary(out))
    return 0


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def mosaics(folder: Path, count: int, rows: int, cols: int) -> list[str]:
    crack, clean = held_out_patches(services.DATA_DIR)
    rng = random.Random(0)
    refs = []
    for i in range(count):
        m = build_mosaic(crack, clean, rows, cols, rng, crack_cells=rng.randint(3, 12))
        refs.append(str(save_mosaic(m, folder / f"big-{i}.jpg")))
    return refs


def queue_runs(
    args: argparse.Namespace,
    skip: set[str],
    photos: Any,
    engine: Engine,
    tmp: Path,
    int8: Path | None,
) -> dict[str, dict[str, Any]]:
    from worker.app import app
    from worker.enqueue import send

    big_dir = tmp / "big"  # never inside the data folder
    big_dir.mkdir(exist_ok=True)
    big = mosaics(big_dir, args.photos, args.rows, args.cols)
    env = {
        "CRACKQ_ALLOWED_ROOTS": f"{photos.root},{big_dir.resolve()}",
        "CRACKQ_MAP_TILE": str(PATCH),
        "CRACKQ_MAP_OVERLAP": str(args.overlap),
    }
    if int8 is not None:
        env["CRACKQ_MODEL_CHECKPOINT"] = str(int8)
    found: dict[str, dict[str, Any]] = {}
    with worker(tmp, "mapload", env=env) as w:
        w.wait_for_log(READY, 300)
        if "throughput" not in skip:
            send(app, message_rows("map-big", big))
            waited = wait_rows(engine, "map-big", len(big), timeout_s=120 + 60 * len(big))
            found["map_throughput"] = {
                "bench": "map_throughput",
                **span(engine, "map-big"),
                "timed_out": waited.timed_out,
            }
            emit(found["map_throughput"])
        if "fairness" not in skip:
            alone = trickle(engine, photos, 0, args.rate, args.trickle_s / 2, "single-alone")
            send(app, message_rows("map-busy", big))
            time.sleep(2.0)  # the first big photo is being mapped
            busy = trickle(engine, photos, 1000, args.rate, args.trickle_s, "single-busy")
            mapped = wait_rows(engine, "map-busy", len(big), timeout_s=120 + 60 * len(big))
            busy_span = span(engine, "map-busy")
            found["map_fairness"] = {
                "bench": "map_fairness",
                "alone": alone,
                "while_mapping": busy,
                "maps_during": busy_span,
                "timed_out": mapped.timed_out,
            }
            emit(found["map_fairness"])
    return found


def span(engine: Engine, batch: str) -> dict[str, Any]:
    """Tiles and seconds from the first map's start to the last one's end, from the rows."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), sum(tiles), extract(epoch FROM max(finished_at) - min(started_at)), "
                "count(*) FILTER (WHERE status = 'failed') FROM results WHERE batch_id = :b"
            ),
            {"b": batch},
        ).one()
    photos, tiles, seconds, failed = (
        int(row[0]),
        int(row[1] or 0),
        float(row[2] or 0.0),
        int(row[3]),
    )
    return {
        "photos": photos,
        "tiles": tiles,
        "seconds": round(seconds, 2),
        "tiles_per_s": round(tiles / seconds, 1) if seconds else None,
        "failed": failed,
    }


MEMORY_CHILD = """
import json, sys, time
from models.tiles import map_image, tile_grid
from worker.decode import decode_image
from worker.forward import run
from worker.modelstore import ModelSource, build_classifier
from models.numerics import resolve_numerics
from models.openvino_backend import resolve_backend
from models.checkpoints import expected_sha256
from pathlib import Path

ckpt = sys.argv[1]
numerics = resolve_numerics("cpu", "auto", True)
source = ModelSource("bench", Path(ckpt), expected_sha256(Path(ckpt))) if ckpt else ModelSource("random")
clf = build_classifier(source, numerics, "never", backend=resolve_backend("auto", "cpu"), int8=True)
data = Path(sys.argv[2]).read_bytes()
clf.predict(__import__("torch").zeros(32, clf.input_size, clf.input_size, 3, dtype=__import__("torch").uint8))

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
before = status("VmRSS")
t0 = time.perf_counter()
image = decode_image(data, 50_000_000, target=None)
grid = tile_grid(*image.size, 227, 0.5)
cmap = map_image(image, grid, lambda t: run(None, clf, t, "tiles"), size=clf.input_size, batch=32, threshold=0.5)
seconds = time.perf_counter() - t0
after = status("VmHWM")
print(json.dumps({"pixels": image.size[0] * image.size[1], "bytes": len(data), "tiles": len(grid),
                  "seconds": round(seconds, 1), "rss_before_mb": round(before, 1),
                  "peak_rss_after_mb": round(after, 1), "peak_growth_mb": round(after - before, 1),
                  "served": clf.serving}))
"""


def memory(int8: Path | None, tmp: Path) -> dict[str, Any]:
    """Peak RSS growth of decoding and mapping one 50 MP photo, in a fresh process.

    The photo is made here, so its making does not count; the child resets its peak
    RSS (/proc/self/clear_refs) once the model is loaded and warm.
    """
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(0).integers(0, 255, (577, 866, 3), dtype=np.uint8)
    photo = tmp / "50mp.jpg"
    big = Image.fromarray(small).resize((8660, 5773), Image.Resampling.BILINEAR)
    big.save(photo, "JPEG", quality=90)
    del big
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(int8 or ""), str(photo)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"bench": "map_memory", "error": done.stderr[-2000:]}
    return {"bench": "map_memory", **json.loads(done.stdout.strip().splitlines()[-1])}


def summary(out: dict[str, dict[str, Any]]) -> dict[str, Any]:
    model = out.get("model", {})
    line: dict[str, Any] = {"bench": "mapload_summary", "host": host_info()}
    ips, single = model.get("served_images_per_s"), model.get("single_image_ms_p50")
    line["model_images_per_s"], line["model_single_image_ms"] = ips, single
    tp = out.get("map_throughput", {})
    if ips and tp.get("tiles_per_s"):
        line["tiles_per_s_vs_model"] = round(tp["tiles_per_s"] / ips, 3)
    fair = out.get("map_fairness", {})
    busy, alone = fair.get("while_mapping", {}), fair.get("alone", {})
    if busy.get("p50_ms") and alone.get("p50_ms"):
        line["single_p50_busy_vs_alone"] = round(busy["p50_ms"] / alone["p50_ms"], 2)
    if busy.get("p50_ms") and single:
        line["single_p50_busy_vs_model_single"] = round(busy["p50_ms"] / single, 2)
    if "map_memory" in out:
        line["peak_rss_growth_50mp_mb"] = out["map_memory"].get("peak_growth_mb")
    return line

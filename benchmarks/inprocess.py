"""In-process pipeline: read + decode -> infer -> one write per batch, without the queue.

`python -m benchmarks.run --suite inprocess --refs FILE --n N` runs crackq's own pipeline
(`worker.pipeline.classify`, through `Runtime.classify`) in this process, two batches in
flight as in the worker, until every row is committed, and prints one JSON line. `run()`
starts it in a fresh process set up as `crackq worker` sets itself up (allocator), from
the speed suite.

On a GPU this is the issue's in-process decode -> infer -> write figure (batch 256,
one decode thread per core); on the CPU, compared with e2e, it shows what the queue costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.services import Photos

log = logging.getLogger(__name__)


def run(
    photos: Photos, tmp: Path, n: int, allocator: str | None, checkpoint: Path | None = None
) -> dict[str, Any]:
    """`n` photos through the pipeline in a fresh process, serving `checkpoint` if given."""
    refs = tmp / "inprocess-refs.txt"
    refs.write_text("\n".join(photos.cycle(0, n)))
    from benchmarks.run import in_child

    env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root)}
    if checkpoint is not None:
        env["CRACKQ_MODEL_CHECKPOINT"] = str(checkpoint)
    args = ["--refs", str(refs), "--n", str(n)]
    return in_child("inprocess", args, 1800, allocator, **env)


def measure(refs: list[str], batch: int, decode_threads: int, inflight: int = 2) -> dict[str, Any]:
    """Classify `refs` in batches of `batch`, `inflight` batches at once; timings and rates."""
    import torch

    from benchmarks.stats import utcnow
    from worker.pipeline import Item
    from worker.runtime import build_runtime
    from worker.settings import Settings

    settings = Settings(batch_size=batch, decode_threads=decode_threads)
    t0 = time.perf_counter()
    rt = build_runtime(settings)  # loads, converts or compiles the model, warms it up
    load_s = time.perf_counter() - t0
    at = utcnow()
    items = [Item(f"bench-inproc-{i}", r, "bench-inproc", at) for i, r in enumerate(refs)]
    rt.classify(
        [Item(f"bench-inproc-warm-{i}", r, "bench-warm") for i, r in enumerate(refs[:batch])]
    )
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(inflight, thread_name_prefix="bench-inflight") as pool:
        written = sum(len(rows) for rows in pool.map(rt.classify_all, batches))
    seconds = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    clf = rt.classifier()
    rt.close()
    return {
        "bench": "inprocess",
        "images": len(items),
        "rows_written": written,
        "seconds": round(seconds, 2),
        "images_per_s": round(written / seconds, 2),
        "device": clf.numerics.device.type,
        "gpu": torch.cuda.get_device_name() if clf.numerics.device.type == "cuda" else None,
        "backend": type(clf).__name__,
        "numerics": clf.serving,
        "batch": batch,
        "decode_threads": decode_threads,
        "batches_in_flight": inflight,
        "cpu_ms_per_image": round(1000.0 * cpu_s / max(written, 1), 2),
        "model_load_s": round(load_s, 1),
    }


def main(argv: list[str], prog: str) -> int:
    """The inprocess suite (a child of the speed suite): one JSON line, then a hard exit."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--refs", type=Path, required=True, help="file with one image ref a line")
    parser.add_argument("--n", type=int, default=0, help="use the first N refs (0 = all)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (0: 256 GPU, 32 CPU)")
    parser.add_argument("--decode-threads", type=int, default=0, help="0: one per core on GPUs")
    args = parser.parse_args(argv)
    import torch

    from models.numerics import resolve_device
    from worker.settings import get_settings

    refs = [r for r in args.refs.read_text().splitlines() if r][: args.n or None]
    gpu = resolve_device(get_settings().device).type == "cuda"
    batch = args.batch or (256 if gpu else get_settings().batch_size)
    threads = args.decode_threads or (
        (os.cpu_count() or 2) if gpu else get_settings().decode_threads
    )
    log.info("%d refs, batch %d, %d decode threads, torch %s", len(refs), batch, threads,
             torch.__version__)  # fmt: skip
    print(json.dumps(measure(refs, batch, threads)), flush=True)
    # The figures are out. Skip interpreter teardown: about one exit in three aborted in
    # native code there ("terminate called without an active exception", torch and
    # OpenVINO thread pools being destroyed), which would turn a good run into a failure.
    sys.stderr.flush()
    os._exit(0)

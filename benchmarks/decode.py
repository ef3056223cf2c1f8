"""decode: how many photos/s the worker's read + decode + resize step gives, by thread count.

The same `worker.pipeline.load` the worker runs, in a thread pool, on the bench photos.
It is the ceiling of any pipeline fed by these threads: on a GPU host, if it is below the
model's rate, decoding (and the GIL, for per-photo Python work) is what limits in-process
and end-to-end throughput.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.services import Photos


def run(photos: Photos, n: int) -> dict[str, Any]:
    from worker.pipeline import Item, load
    from worker.settings import Settings
    from worker.sources import SourceLimits

    settings = Settings(allowed_roots=[photos.root])
    limits = SourceLimits.from_settings(settings)
    items = [Item(f"decode-{i}", ref) for i, ref in enumerate(photos.cycle(0, n))]
    counts = sorted({1, 2, os.cpu_count() or 1})

    def one(item: Item) -> Any:
        return load(item, limits, settings.max_image_pixels, 224)

    out: dict[str, Any] = {"bench": "decode", "images": n}
    for threads in counts:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, items[:64]))  # warm: threads started, files cached
            cpu0, t0 = time.process_time(), time.perf_counter()
            loaded = list(pool.map(one, items))
            seconds = time.perf_counter() - t0
            cpu_s = time.process_time() - cpu0
        failed = sum(x.error is not None for x in loaded)
        out[f"threads_{threads}"] = {
            "images_per_s": round(n / seconds, 1),
            "cpu_ms_per_image": round(1000.0 * cpu_s / n, 3),
            "failed": failed,
        }
    return out

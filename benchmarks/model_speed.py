"""Raw ResNet50 forward speed, fp32 NCHW vs the worker's fast numerics, in a worker-like process.

`measure()` starts `python -m benchmarks.model_speed` with the allocator `crackq worker`
would preload, so the figures are the ones the worker itself can reach.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.services import ROOT

log = logging.getLogger(__name__)


def measure(allocator: str | None, iters: int = 5, latency_iters: int = 30) -> dict[str, Any]:
    """Run the measurement in a fresh process (LD_PRELOAD `allocator`); its JSON result."""
    env = dict(os.environ)
    if allocator:
        env["LD_PRELOAD"] = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), allocator]))
    argv = [sys.executable, "-m", "benchmarks.model_speed", "--iters", str(iters)]
    argv += ["--latency-iters", str(latency_iters)]
    out = subprocess.run(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, check=True, timeout=900, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _throughput(predict: Any, batch: Any, warmup: int, iters: int) -> tuple[float, float]:
    """(images/s, median seconds per batch) after `warmup` untimed passes."""
    for _ in range(warmup):
        predict(batch)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - t0)
    return len(batch) * iters / sum(times), statistics.median(times)


def run(iters: int, latency_iters: int, batch_size: int = 32, size: int = 224) -> dict[str, Any]:
    import torch

    from models.classifier import Classifier, build_model, cpu_has_bf16, resolve_numerics

    torch.manual_seed(0)
    weights = build_model().state_dict()
    batch = torch.randn(batch_size, 3, size, size)
    one = torch.randn(1, 3, size, size)
    configs = {
        "fp32_nchw": resolve_numerics("cpu", "fp32", channels_last=False),
        "fast": resolve_numerics("cpu", "bf16", channels_last=True),
    }
    out: dict[str, Any] = {}
    for name, numerics in configs.items():
        model = build_model()
        model.load_state_dict(weights)
        clf = Classifier(model, numerics, version="bench", input_size=size)
        t0 = time.perf_counter()
        ips, per_batch = _throughput(clf.predict, batch, warmup=2, iters=iters)
        log.info("%s: %.1f images/s (%.1f s)", numerics.name, ips, time.perf_counter() - t0)
        out[name] = {"numerics": numerics.name, "images_per_s": round(ips, 2)}
        out[name]["batch_s_median"] = round(per_batch, 4)
        if name == "fast":
            for _ in range(5):
                clf.predict(one)
            lat = []
            for _ in range(latency_iters):
                t1 = time.perf_counter()
                clf.predict(one)
                lat.append((time.perf_counter() - t1) * 1000.0)
            lat.sort()
            out["single_image_ms_p50"] = round(statistics.median(lat), 2)
            out["single_image_ms_p90"] = round(lat[int(0.9 * (len(lat) - 1))], 2)
        del clf, model
    out["fast_vs_fp32"] = round(out["fast"]["images_per_s"] / out["fp32_nchw"]["images_per_s"], 2)
    out.update(
        batch=batch_size,
        image_size=size,
        iters=iters,
        latency_iters=latency_iters,
        torch_threads=torch.get_num_threads(),
        bf16_native=cpu_has_bf16(),
        auto_numerics=resolve_numerics("cpu").name,
        ld_preload=os.environ.get("LD_PRELOAD", ""),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--latency-iters", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="model_speed: %(message)s")
    print(json.dumps(run(args.iters, args.latency_iters)))


if __name__ == "__main__":
    main()

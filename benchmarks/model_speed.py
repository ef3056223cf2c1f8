"""Raw ResNet50 forward speed: torch fp32 NCHW, torch bf16 channels_last, OpenVINO bf16 and INT8.

`measure()` starts `python -m benchmarks.run --suite model` once per backend, in processes set
up as `crackq worker` sets itself up (torch under the preloaded allocator; OpenVINO without
it), so the figures are the ones the worker itself can reach.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def measure(
    allocator: str | None,
    iters: int = 5,
    latency_iters: int = 30,
    served: str = "torch",
    int8: Path | None = None,
) -> dict[str, Any]:
    """Every backend, each in a fresh process; merged JSON with the fastest and the served one.

    `served` is the backend the worker runs (its single-image latency is the trickle's
    yardstick); the e2e target compares against the fastest configuration measured.
    `int8`, a checkpoint with an INT8 graph (harness.int8_model), adds OpenVINO INT8,
    which a worker then serves.
    """
    from models.numerics import resolve_device
    from models.openvino_backend import openvino_installed
    from worker.settings import get_settings

    device = resolve_device(get_settings().device)
    gpu = device.type == "cuda"
    # A GPU needs big batches and more of them to show its speed (about 10k img/s on H100).
    batch, iters = (256, max(iters, 30)) if gpu else (32, iters)
    result = _measure_in_process("torch", allocator, iters, latency_iters, str(device), batch)
    if openvino_installed() and not gpu:
        extra = ["--int8", str(int8)] if int8 else []
        ov = _measure_in_process("openvino", None, iters, latency_iters, "cpu", batch, extra)
        result.update(ov)
    configs = {k: v for k, v in result.items() if isinstance(v, dict) and "images_per_s" in v}
    fastest = max(configs, key=lambda k: configs[k]["images_per_s"])
    served_key = "fast"
    if served == "openvino":
        served_key = "openvino_int8" if "openvino_int8" in configs else "openvino_bf16"
    if gpu and "fast_compiled" in configs:
        served_key = "fast_compiled"  # what a GPU worker serves with the default settings
    result.update(
        fastest=fastest,
        fastest_images_per_s=configs[fastest]["images_per_s"],
        served=served_key,
        served_images_per_s=configs[served_key]["images_per_s"],
        single_image_ms_p50=configs[served_key]["single_image_ms_p50"],
        single_image_ms_p90=configs[served_key]["single_image_ms_p90"],
        served_cpu_ms_per_image=configs[served_key]["cpu_ms_per_image"],
    )
    return result


def _measure_in_process(
    backend: str,
    allocator: str | None,
    iters: int,
    latency_iters: int,
    device: str,
    batch: int,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    from benchmarks.run import in_child

    args = ["--iters", str(iters), "--latency-iters", str(latency_iters), "--backend", backend]
    args += ["--device", device, "--batch", str(batch), *(extra or [])]
    return in_child("model", args, 900, allocator)


def _throughput(predict: Any, batch: Any, warmup: int, iters: int) -> tuple[float, float, float]:
    """(images/s, median seconds per batch, CPU ms per image) after `warmup` untimed passes."""
    for _ in range(warmup):
        predict(batch)
    times = []
    cpu0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - t0)
    cpu_ms = 1000.0 * (time.process_time() - cpu0) / (len(batch) * iters)
    return len(batch) * iters / sum(times), statistics.median(times), cpu_ms


def _latency(predict: Any, one: Any, iters: int) -> dict[str, float]:
    """p50 and p90 of single-image latency (ms) after 5 untimed passes."""
    for _ in range(5):
        predict(one)
    lat = []
    for _ in range(iters):
        t1 = time.perf_counter()
        predict(one)
        lat.append((time.perf_counter() - t1) * 1000.0)
    lat.sort()
    return {
        "single_image_ms_p50": round(statistics.median(lat), 2),
        "single_image_ms_p90": round(lat[int(0.9 * (len(lat) - 1))], 2),
    }


def configurations(
    backend: str, device: str, int8: dict[str, Any] | None = None
) -> dict[str, tuple[Any, Any]]:
    """name -> (classifier factory, numerics) measured for `backend` on `device`.

    On a GPU, `fast_compiled` adds torch.compile and CUDA graphs, as a GPU worker serves
    by default; the CPU leaves them out (OpenVINO is its compiled path). `int8` is a
    checkpoint's INT8 graph, served by OpenVINO.
    """
    from models.numerics import resolve_numerics
    from models.openvino_backend import OpenVINOClassifier
    from models.serving import Classifier

    if backend == "openvino":
        bf16 = resolve_numerics("cpu", "bf16", True)
        configs: dict[str, tuple[Any, Any]] = {"openvino_bf16": (OpenVINOClassifier, bf16)}
        if int8 is not None:
            configs["openvino_int8"] = (functools.partial(OpenVINOClassifier, int8=int8), bf16)
        return configs
    configs = {
        "fp32_nchw": (Classifier, resolve_numerics(device, "fp32", channels_last=False)),
        "fast": (Classifier, resolve_numerics(device, "bf16", True)),
    }
    if configs["fast"][1].device.type == "cuda":
        graphs = resolve_numerics(device, "bf16", True, compile="on", cuda_graphs="on")
        configs["fast_compiled"] = (Classifier, graphs)
    return configs


def run(
    iters: int,
    latency_iters: int,
    backend: str = "torch",
    batch_size: int = 32,
    size: int = 224,
    device: str = "cpu",
    int8: Path | None = None,
) -> dict[str, Any]:
    import torch

    from models.checkpoints import expected_sha256, load_checkpoint
    from models.network import build_model
    from models.numerics import cpu_has_bf16, resolve_numerics
    from models.quantize import INT8_KEY

    torch.manual_seed(0)
    weights = build_model().state_dict()
    graph = load_checkpoint(int8, expected_sha256(int8))[INT8_KEY] if int8 else None
    configs = configurations(backend, device, graph)
    dev = configs[next(iter(configs))][1].device
    # uint8 pixels as the pipeline hands them over: normalisation is part of every backend.
    # On a GPU they already sit in device memory: this is the model alone.
    batch = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8).to(dev)
    one = batch[:1].clone()
    out: dict[str, Any] = {}
    for name, (kind, numerics) in configs.items():
        model = build_model()
        model.load_state_dict(weights)
        # Compiled forwards build only the shapes used here (the largest batch and 1).
        extra = {"max_batch": batch_size} if numerics.padded else {}
        clf = kind(model, numerics, version="bench", input_size=size, **extra)
        t0 = time.perf_counter()
        ips, per_batch, cpu_ms = _throughput(clf.predict, batch, warmup=2, iters=iters)
        log.info("%s %s: %.1f images/s (%.1f s)", name, clf.serving, ips, time.perf_counter() - t0)
        out[name] = {"numerics": clf.serving, "images_per_s": round(ips, 2)}
        out[name]["batch_s_median"] = round(per_batch, 4)
        out[name]["cpu_ms_per_image"] = round(cpu_ms, 2)
        if name != "fp32_nchw":
            out[name].update(_latency(clf.predict, one, latency_iters))
        del clf, model
    if backend == "torch":
        fast, fp32 = out["fast"]["images_per_s"], out["fp32_nchw"]["images_per_s"]
        out["fast_vs_fp32"] = round(fast / fp32, 2)
        out["ld_preload"] = os.environ.get("LD_PRELOAD", "")
        out.update(
            batch=batch_size,
            image_size=size,
            iters=iters,
            latency_iters=latency_iters,
            torch_threads=torch.get_num_threads(),
            bf16_native=cpu_has_bf16(),
            auto_numerics=resolve_numerics(device, compile="auto", cuda_graphs="auto").name,
            gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        )
    return out


def main(argv: list[str], prog: str) -> int:
    """The model suite (a child of the speed suite): every configuration of one backend."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--latency-iters", type=int, default=30)
    parser.add_argument("--backend", choices=("torch", "openvino"), default="torch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--int8", type=Path, help="checkpoint with an INT8 graph (openvino)")
    args = parser.parse_args(argv)
    found = run(
        args.iters, args.latency_iters, args.backend, args.batch, 224, args.device, args.int8
    )
    print(json.dumps(found))
    return 0

"""The speed suite (the default, `--n N --only NAME,...`): throughput and latency, JSON lines.

One JSON object per benchmark on stdout, then a `summary` line with the issue's ratios;
progress goes to stderr. Only loopback services are used: a database of its own
(crackq_bench_<pid>, dropped at the end) and Redis db 13 (flushed before and after).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import services
from benchmarks.cpu import cpu_model

log = logging.getLogger(__name__)
NAMES = ("model", "decode", "bulk_write", "e2e", "trickle", "rss", "naive", "inprocess")
DEFAULT_RSS_IMAGES, FULL_RSS_IMAGES = 6_000, 20_000


def parse_args(argv: list[str], prog: str, epilog: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=2000, help="photos for e2e (default 2000)")
    parser.add_argument("--naive-n", type=int, default=400, help="photos for naive (default 400)")
    parser.add_argument("--trickle-s", type=float, default=40.0, help="trickle duration (s)")
    parser.add_argument(
        "--trickle-rate",
        type=float,
        default=0.0,
        help="trickle messages per second (default 0: half the e2e images/s); "
        "fix it to compare two variants at the same load",
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument(
        "--with-rss", action="store_true", help=f"rss up to {FULL_RSS_IMAGES:,} images (~10 min)"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        type=int,
        const=100,
        default=0,
        metavar="HZ",
        help="py-spy samples the e2e worker at HZ per second (default 100): a `phases` line "
        "of CPU ms per photo by phase; a phase of 0.1 ms per photo needs n*HZ/10000 >> 1 samples",
    )
    args = parser.parse_args(argv)
    args.want = set(filter(None, args.only.split(","))) or set(NAMES)
    unknown = args.want - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(NAMES)}")
    if args.n < 1 or args.naive_n < 1:
        parser.error("--n and --naive-n must be >= 1")
    if args.profile < 0 or args.profile > 1000:
        parser.error("--profile HZ must be between 1 and 1000")
    full = args.with_rss or "rss" in set(filter(None, args.only.split(",")))
    args.rss_target = FULL_RSS_IMAGES if full else DEFAULT_RSS_IMAGES
    return args


def host_info() -> dict[str, Any]:
    import torch

    from models.numerics import cpu_has_bf16
    from worker.launch import find_allocator
    from worker.settings import get_settings

    lib = find_allocator(get_settings().allocator)
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "allocator": Path(lib).name if lib else "system",
        "bf16_native": cpu_has_bf16(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def summary(found: dict[str, dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """The issue's ratios, from whichever of their inputs were measured."""

    def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
        return round(a / b, digits) if a is not None and b else None

    model, e2e, naive = found.get("model", {}), found.get("e2e", {}), found.get("naive", {})
    inproc = found.get("inprocess", {})
    trickle = found.get("trickle", {})
    fast = model.get("fastest_images_per_s")
    e2e_cpu = e2e.get("cpu_ms_per_image", {}).get("total")
    model_cpu = model.get("served_cpu_ms_per_image")
    return {
        "bench": "summary",
        "e2e_over_model_fastest": ratio(e2e.get("images_per_s"), fast),
        "e2e_over_naive": ratio(e2e.get("images_per_s"), naive.get("images_per_s"), 2),
        # the GPU target: in-process decode -> infer -> write >= 0.7 x model-only
        "inprocess_over_model_fastest": ratio(inproc.get("images_per_s"), fast),
        "e2e_over_inprocess": ratio(e2e.get("images_per_s"), inproc.get("images_per_s")),
        "trickle_p50_over_single_image": ratio(
            trickle.get("p50_ms"), model.get("single_image_ms_p50"), 2
        ),
        # CPU ms per image that the model did not use: the message path, decoding, the
        # broker and the database. On 2 cores it is what keeps e2e below the model.
        "overhead_cpu_ms_per_image": (
            round(e2e_cpu - model_cpu, 2) if e2e_cpu is not None and model_cpu else None
        ),
        "inputs": {
            "e2e_images_per_s": e2e.get("images_per_s"),
            "model_fastest": model.get("fastest"),
            "model_fastest_images_per_s": fast,
            "model_served": model.get("served"),
            "naive_images_per_s": naive.get("images_per_s"),
            "inprocess_images_per_s": inproc.get("images_per_s"),
            "trickle_p50_ms": trickle.get("p50_ms"),
            "single_image_ms_p50": model.get("single_image_ms_p50"),
        },
        "wall_s": round(wall_s, 1),
    }


class Results:
    """Every benchmark's JSON line as it is printed, and whether any of them failed."""

    def __init__(self, host: dict[str, Any]) -> None:
        self.host = host
        self.found: dict[str, dict[str, Any]] = {}
        self.failed = False

    def emit(self, result: dict[str, Any]) -> None:
        self.found[result["bench"]] = result
        # Other jobs on a shared host skew figures; the load at each line tells by how much.
        load = round(os.getloadavg()[0], 2)
        print(json.dumps({**result, "load_avg_1m_at_end": load, "host": self.host}), flush=True)

    def attempt(self, name: str, fn: Any, *a: Any) -> None:
        try:
            out = fn(*a)
            for result in out if isinstance(out, list) else [out]:
                self.emit(result)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            log.exception("%s failed", name)
            self.failed = True
            self.emit({"bench": name, "error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str], prog: str, epilog: str | None = None) -> int:
    """The speed suite: the selected benchmarks in order, then the summary line."""
    args = parse_args(argv, prog, epilog)
    services.point_settings_here()  # before anything reads crackq's settings
    started = time.monotonic()
    results = Results(host_info())
    tmp = Path(tempfile.mkdtemp(prefix="crackq-bench-"))
    log.info("running %s; logs in %s; host %s", sorted(args.want), tmp, results.host)
    measure(args, tmp, results)
    results.emit(summary(results.found, time.monotonic() - started))
    if results.failed:
        log.error("some benchmarks failed; worker logs kept in %s", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if results.failed else 0


def measure(args: argparse.Namespace, tmp: Path, results: Results) -> None:
    """Run each benchmark in `args.want`, sharing one set of services among those that need it."""
    from benchmarks import baselines, decode, inprocess, model_speed, worker_bench
    from harness import int8_model

    attempt = results.attempt
    # The model a CPU worker here would serve fastest: OpenVINO INT8 when it can be made.
    serves_model = args.want & {"model", "e2e", "trickle", "rss", "inprocess"}
    int8 = int8_model.checkpoint(tmp) if serves_model else None
    if "model" in args.want:
        attempt("model", lambda: {"bench": "model", **model_speed.measure(*_served(), int8)})
    worker_benches = args.want & {"e2e", "trickle", "rss"}
    needs_services = worker_benches or args.want & {"naive", "bulk_write", "inprocess", "decode"}
    if not needs_services:
        return
    with services.bench_services(max(args.n, args.naive_n)) as (photos, engine):
        if "decode" in args.want:
            attempt("decode", decode.run, photos, max(args.n, 500))
        if "bulk_write" in args.want:
            attempt("bulk_write", baselines.bulk_write, engine)
        if worker_benches:
            want = args.want | {"e2e"}  # trickle and rss run after the e2e load
            attempt(
                "e2e",
                worker_bench.run,
                photos,
                engine,
                tmp,
                args.n,
                want,
                args.rss_target,
                args.trickle_s,
                int8,
                args.profile,
                args.trickle_rate,
            )
        if "inprocess" in args.want:
            allocator, _, _, backend = _served()
            allocator = None if backend == "openvino" else allocator
            attempt("inprocess", inprocess.run, photos, tmp, args.n, allocator, int8)
        if "naive" in args.want:
            attempt("naive", baselines.naive, photos, engine, tmp, args.naive_n)


def _allocator_path() -> str | None:
    from worker.launch import find_allocator
    from worker.settings import get_settings

    return find_allocator(get_settings().allocator)


def _served() -> tuple[str | None, int, int, str]:
    """(allocator for torch, iters, latency iters, the backend a CPU worker serves)."""
    from worker.launch import serves_openvino
    from worker.settings import get_settings

    return _allocator_path(), 5, 30, "openvino" if serves_openvino(get_settings()) else "torch"

"""`python -m benchmarks.run [--suite NAME] [its options]`: every benchmark suite, one entry point.

Without `--suite` it runs the speed suite (`--n N --only model,decode,...`), as it always
has. Each suite uses loopback services of its own: a throwaway database and a private
Redis db. `python -m benchmarks.run --suite NAME --help` tells a suite's options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
from typing import Any

from harness.procs import ROOT

# name -> (module with `main(argv, prog)`, what it measures)
SUITES = {
    "speed": ("benchmarks.speed", "throughput and latency: model, decode, e2e, trickle, rss, "
              "naive, inprocess, bulk_write (the default)"),
    "reliability": ("benchmarks.reliability", "delivery faults, hostile inputs and a load run; "
                    "markdown tables and one JSON line"),
    "load": ("benchmarks.load", "N references submitted at once, one worker, memory sampled"),
    "shutdown": ("benchmarks.shutdown_stress", "SIGTERM workers serving a hot-switched INT8 "
                 "model, count crashes"),
    "train": ("benchmarks.train_quick", "a quick fine-tuning run on real photos"),
    "robustness": ("benchmarks.robustness", "a checkpoint on held-out photos under blur, noise, "
                   "scale, colour, texture shifts; accuracy, F1, AUC per shift"),
    "maps": ("benchmarks.maps", "crack maps of mosaics of held-out patches: cell precision, "
             "recall, F1 and photo accuracy per overlap, against the whole photo resized"),
    "dense": ("benchmarks.dense_maps", "the fully convolutional crack map against the tiled "
              "one on mosaics of held-out patches: parity, tiles/s, cell F1 of each"),
    "mapload": ("benchmarks.map_load", "crack maps under load: tiles/s through the queue vs "
                "the model, single-photo latency while mapping, 50 MP peak RSS"),
    "scaleout": ("benchmarks.scaleout", "two inference workers and a trainer sharing only "
                 "Redis, PostgreSQL and S3: 1 vs 2 workers, a hot switch under load, store speed"),
    "shadow": ("benchmarks.shadow", "what shadow scoring costs: e2e img/s of one worker "
               "without, with (every photo) and again without a shadow version; the ratio"),
    "review": ("benchmarks.review_cost", "what the review queue's rules cost a batch's write "
               "(with and without them, over a table of stored results)"),
    "rescore": ("benchmarks.rescore", "what re-scoring costs live traffic: live p50 latency "
                "with and without a concurrent `crackq rescore` of N stored rows"),
    "console": ("benchmarks.console", "the console's pages and photos at scale: server time "
                "of each (p50, p95) over 100,000 stored results"),
    "dashboard": ("benchmarks.dashboard", "the Grafana dashboard's queries on a real Prometheus "
                  "over a load run, drawn to docs/dashboard.png"),
    "model": ("benchmarks.model_speed", "one backend's raw forward speed (the speed suite "
              "starts it in a fresh process)"),
    "inprocess": ("benchmarks.inprocess", "the pipeline without the queue (the speed suite "
                  "starts it in a fresh process)"),
}  # fmt: skip


def suites_help() -> str:
    lines = ["suites (--suite NAME):"]
    lines += [f"  {name:<12} {what}" for name, (_, what) in SUITES.items()]
    return "\n".join(lines)


def in_child(
    suite: str, args: list[str], timeout_s: float, allocator: str | None = None, **env: str
) -> dict[str, Any]:
    """Run `suite` in a fresh process, set up as `crackq worker` sets itself up (the
    allocator preloaded), with `env` added; the last JSON line it printed."""
    child_env = {**os.environ, **env}
    if allocator:
        child_env["LD_PRELOAD"] = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), allocator]))
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", suite, *args]
    out = subprocess.run(
        argv, cwd=ROOT, env=child_env, stdout=subprocess.PIPE, check=True, timeout=timeout_s,
        text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--suite", choices=SUITES, default="speed")
    chosen, rest = chooser.parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    module = importlib.import_module(SUITES[chosen.suite][0])
    prog = "python -m benchmarks.run"
    if chosen.suite == "speed":  # the default suite's --help lists every suite
        return int(module.main(rest, prog, f"{__doc__}\n{suites_help()}"))
    return int(module.main(rest, f"{prog} --suite {chosen.suite}"))


if __name__ == "__main__":
    sys.exit(main())

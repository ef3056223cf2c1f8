"""The reliability suite: delivery faults, hostile inputs and a load run against real processes.

Runs every fault in harness.faults against real processes (a `crackq worker`, Redis,
PostgreSQL), then harness.hostile's bad inputs and benchmarks.load's load run (20,000
references submitted at once by default), and prints markdown tables (faults survived, bad
inputs and their codes, images submitted vs rows stored, RSS over the load run) and one JSON
line with everything on stdout; progress goes to stderr. Services are its own, as every suite's:
a database crackq_bench_<pid> (dropped at the end) and Redis db 13 (flushed before and
after); the Redis restart faults start private redis-servers on free loopback ports.
Exit status 1 when anything was lost, duplicated or did not survive.
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

log = logging.getLogger(__name__)


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs (~5 min in all)")
    parser.add_argument("--n", type=int, help="photos per fault (default 200, quick 60)")
    parser.add_argument(
        "--load", type=int, help="photos in the load run (default 20000, quick 500)"
    )
    args = parser.parse_args(argv)
    args.n = args.n or (60 if args.quick else 200)
    args.load = args.load if args.load is not None else (500 if args.quick else 20_000)
    if args.n < 10 or args.load < 0:
        parser.error("--n must be >= 10 and --load >= 0")
    return args


def run_faults(rig: Any, n: int) -> list[dict[str, Any]]:
    """Every scenario in turn; one that raises is a row that did not survive, not a stop."""
    from harness.faults import SCENARIOS

    rows = []
    for name, scenario in SCENARIOS.items():
        log.info("fault %s: %d photos", name, n)
        t0 = time.monotonic()
        try:
            row = scenario(rig, n=n) if name != "malformed_and_pickle" else scenario(rig)
        except Exception as exc:  # one broken scenario must not hide the others
            log.exception("fault %s failed", name)
            row = {"fault": name, "survived": False, "detail": f"{type(exc).__name__}: {exc}"}
        row["wall_s"] = round(time.monotonic() - t0, 1)
        log.info("fault %s: %s", name, row)
        rows.append(row)
    return rows


def run_hostile(tmp: Path) -> list[dict[str, Any]] | str:
    """harness.hostile's rows, or why they were not run."""
    from harness.hostile.run import hostile_inputs

    try:
        return hostile_inputs(tmp)
    except Exception as exc:
        log.exception("hostile inputs failed")
        return f"not run: {type(exc).__name__}: {exc}"


def run_load(tmp: Path, n: int, photos: Any, engine: Any) -> dict[str, Any] | str:
    """benchmarks.load's load run, or why it was not run."""
    if n == 0:
        return "not run: --load 0"
    from benchmarks.load import load_run

    try:
        return load_run(tmp, n, photos, engine)
    except Exception as exc:
        log.exception("load run failed")
        return f"not run: {type(exc).__name__}: {exc}"


def main(argv: list[str], prog: str) -> int:
    """The reliability suite: faults, then bad inputs, then the load run; tables and JSON."""
    args = parse_args(argv, prog)
    services.point_settings_here()  # before anything reads crackq's settings
    from benchmarks.tables import passed, report
    from harness.faults.rig import Rig

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="crackq-reliability-"))
    log.info("faults with %d photos each, load run of %d; logs in %s", args.n, args.load, tmp)
    with services.bench_services(max(args.n, 200)) as (photos, engine):
        (tmp / "faults").mkdir()
        rig = Rig(tmp / "faults", engine, services.BROKER_URL, photos.paths, photos.root)
        faults = run_faults(rig, args.n)
        hostile = run_hostile(tmp / "hostile")
        (tmp / "load").mkdir()
        load = run_load(tmp / "load", args.load, photos, engine)
    ok = passed(faults, hostile, load)
    print(report(faults, hostile, load), flush=True)
    summary = {
        "bench": "reliability",
        "passed": ok,
        "faults": faults,
        "hostile": hostile,
        "load": load,
        "photos": {"count": len(photos.paths), "synthetic": photos.synthetic},
        "n_per_fault": args.n,
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, default=str), flush=True)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log.error("something was lost, duplicated or did not survive; worker logs kept in %s", tmp)
    return 0 if ok else 1

"""`python -m benchmarks.reliability [--quick] [--load N] [--n N]`: delivery faults, bad inputs, load.

Runs every fault in benchmarks.faults against real processes (a `crackq worker`, Redis,
PostgreSQL), then benchmarks.hostile's bad inputs and benchmarks.load's load run (20,000
references submitted at once by default), and prints markdown tables (faults survived, bad inputs and their
codes, images submitted vs rows stored, RSS over the load run) and one JSON line with
everything on stdout; progress goes to stderr. Services are its own, as benchmarks.run's:
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import services

log = logging.getLogger("benchmarks.reliability")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
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
    from benchmarks import faults

    rows = []
    for name, scenario in faults.SCENARIOS.items():
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
    """benchmarks.hostile's rows, or why they were not run."""
    from benchmarks.hostile import hostile_inputs

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


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    faults: list[dict[str, Any]],
    hostile: list[dict[str, Any]] | str,
    load: dict[str, Any] | str,
) -> str:
    """The four markdown tables."""
    out = ["## Faults injected", ""]
    out.append(
        table(
            ["fault", "survived", "lost", "duplicated", "wall s", "detail"],
            [
                [
                    f["fault"],
                    "yes" if f.get("survived") else "**NO**",
                    f.get("lost", "?"),
                    f.get("duplicated", "?"),
                    f.get("wall_s", ""),
                    f.get("detail", ""),
                ]
                for f in faults
            ],
        )
    )
    out += ["", "## Bad inputs and their codes", ""]
    if isinstance(hostile, str):
        out.append(hostile)
    else:
        out.append(
            table(
                ["input", "expected", "got", "ok"],
                [
                    [h["input"], h["expected"], h["got"], "yes" if h["ok"] else "**NO**"]
                    for h in hostile
                ],
            )
        )
    out += ["", "## Images submitted vs rows stored", ""]
    runs = [(f["fault"], f) for f in faults if "submitted" in f]
    if isinstance(load, dict):
        runs.append((f"load run ({load.get('submitted')} photos)", load))
    totals = [sum(int(r.get(k, 0)) for _, r in runs) for k in ("submitted", "stored", "lost")]
    dup = sum(int(r.get("duplicated", 0)) for _, r in runs)
    out.append(
        table(
            ["run", "submitted", "rows stored", "lost", "duplicated"],
            [[name, r["submitted"], r["stored"], r["lost"], r["duplicated"]] for name, r in runs]
            + [["**total**", *totals, dup]],
        )
    )
    out += ["", "## Worker RSS over the load run", ""]
    if isinstance(load, str):
        out.append(load)
    else:
        rss = load.get("rss_mb", {})
        start, end = rss.get("start"), rss.get("end")
        growth = f"{end - start:+.1f} MiB" if start and end else "?"
        out.append(
            table(
                ["start MiB", "middle MiB", "end MiB", "growth", "images/s", "wall s"],
                [
                    [
                        start,
                        rss.get("middle"),
                        end,
                        growth,
                        load.get("images_per_s"),
                        load.get("wall_s", load.get("seconds")),
                    ]
                ],
            )
        )
    return "\n".join(out)


def passed(
    faults: list[dict[str, Any]],
    hostile: list[dict[str, Any]] | str,
    load: dict[str, Any] | str,
) -> bool:
    ok = all(f.get("survived") for f in faults)
    ok = ok and (isinstance(hostile, str) or all(h["ok"] for h in hostile))
    return ok and (isinstance(load, str) or (load["lost"] == 0 and load["duplicated"] == 0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    services.point_settings_here()  # before anything reads crackq's settings
    from benchmarks.fault_rig import Rig

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


if __name__ == "__main__":
    sys.exit(main())

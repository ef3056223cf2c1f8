"""The shutdown suite: SIGTERM workers serving a hot-switched INT8 model, count crashes.

Each cycle starts a real `crackq worker -Q inference` on the untrained model, promotes the
INT8 benchmark checkpoint so the model-poll thread hot-switches to it (cpu-openvino-int8),
sends photos, then SIGTERMs the worker: while batches are in flight (`during`), once the
work is done (`after`), or while the poll thread is loading the new model (`loading`).
One JSON line per cycle on stdout: exit code, whether it crashed and the faulthandler
stacks if so, and what Redis and the results table kept; then a `summary` line. Progress
goes to stderr. Loopback only: a database of its own and Redis db 14 (CRACKQ_STRESS_REDIS_DB).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.faults.rig import Rig, fresh_broker, producer_app
from harness.procs import READY, Proc, wait_until, worker
from harness.rows import final_rows
from harness.shutdown import (
    POLL_S,
    SEGV,
    SWITCHED_INT8,
    crash_stacks,
    leftovers,
    set_promoted,
    terminate,
    worker_env,
)

log = logging.getLogger(__name__)
WHEN = ("during", "after", "loading")
REDIS_DB = int(os.environ.get("CRACKQ_STRESS_REDIS_DB", "14"))
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def switch_and_send(
    w: Proc, rig: Rig, when: str, name: str, ids: list[str], checkpoint: Path, rng: random.Random
) -> bool:
    """Promote the INT8 model, send the photos, wait for the moment `when`; whether it switched."""
    from db.session import make_sessionmaker
    from worker.enqueue import submit

    app = producer_app(rig.broker_url, 30)
    n = len(ids)

    def send() -> None:
        submit(app, make_sessionmaker(rig.engine), rig.refs(n), request_ids=ids, batch_id=name)

    try:
        if when == "loading":  # photos in the old model, the new one compiling in the poll thread
            send()
            wait_until(lambda: final_rows(rig.engine, ids) > 0, 120, step=0.05)
        set_promoted(rig.engine, f"{name}-b", checkpoint)
        if when == "loading":
            time.sleep(rng.uniform(POLL_S, POLL_S + 2.0))
            return bool(re.search(SWITCHED_INT8, w.log()))
        w.wait_for_log(SWITCHED_INT8, 120)
        send()
        if when == "during":
            target = int(n * rng.uniform(0.1, 0.7))
            wait_until(lambda: final_rows(rig.engine, ids) >= target, 120, step=0.05)
        else:
            wait_until(lambda: final_rows(rig.engine, ids) == n, 300, step=0.1)
            time.sleep(rng.uniform(0.0, 1.0))
        return True
    finally:
        app.close()


def cycle(
    rig: Rig,
    index: int,
    when: str,
    n: int,
    checkpoint: Path,
    rng: random.Random,
    batch_size: int = 16,
    start: str = "untrained",
    exit_timeout_s: float = 60,
) -> dict[str, Any]:
    """One worker: start, hot-switch to INT8, `n` photos, SIGTERM at `when`; what it left."""
    client = fresh_broker(rig.broker_url)
    name = f"stress-{os.getpid()}-{index}"
    ids = [f"{name}-{i}" for i in range(n)]
    set_promoted(rig.engine, f"{name}-a" if start == "int8" else None, checkpoint)
    started = time.monotonic()
    with worker(rig.tmp, name, env=worker_env(rig, batch_size)) as w:
        assert w.proc is not None
        w.wait_for_log(READY, 300)
        ready_s = time.monotonic() - started
        switched = switch_and_send(w, rig, when, name, ids, checkpoint, rng)
        at_term = final_rows(rig.engine, ids)
        threads = len(os.listdir(f"/proc/{w.proc.pid}/task"))
        rc, exit_s, hung = terminate(w, exit_timeout_s)
        log_text = w.log()
    stacks = crash_stacks(log_text)
    left = leftovers(rig, client, ids)
    client.close()
    crashed = rc in SEGV or stacks is not None
    if not crashed:
        (rig.tmp / f"{name}.log").unlink(missing_ok=True)
    return {
        "bench": "shutdown_cycle",
        "cycle": index,
        "when": when,
        "start": start,
        "photos": n,
        "switched_to_int8": switched,
        "rows_at_sigterm": at_term,
        "threads_at_sigterm": threads,
        "ready_s": round(ready_s, 1),
        "exit_code": rc,
        "exit_s": round(exit_s, 2),
        "hung": hung,
        "crashed": crashed,
        # killed without faulthandler's report: the kernel could not deliver a signal
        "silent": crashed and stacks is None,
        "photos_predicted": sum(int(k) for k in re.findall(r"batch of (\d+) predicted", log_text)),
        **left,
        "log": str(rig.tmp / f"{name}.log") if crashed else None,
        "stacks": stacks,
    }


def summary(results: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    crashes = [r for r in results if r["crashed"]]
    by_when: dict[str, dict[str, int]] = {}
    for r in results:
        entry = by_when.setdefault(r["when"], {"cycles": 0, "crashes": 0})
        entry["cycles"] += 1
        entry["crashes"] += int(r["crashed"])
    codes = collections.Counter(str(r["exit_code"]) for r in results)
    return {
        "bench": "shutdown_summary",
        "cycles": len(results),
        "crashes": len(crashes),
        "crash_rate": round(len(crashes) / len(results), 3) if results else None,
        "silent_crashes": sum(r["silent"] for r in crashes),
        "by_when": by_when,
        "exit_codes": dict(codes),
        "hung": sum(r["hung"] for r in results),
        "left_unacked": sum(r["unacked"] > 0 for r in results),
        "left_stranded": sum(r["stranded"] > 0 for r in results),
        "exit_s_max": max((r["exit_s"] for r in results), default=None),
        "wall_s": round(wall_s, 1),
    }


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--cycles", type=int, default=50, help="workers to start (default 50)")
    parser.add_argument("--photos", type=int, default=200, help="photos per cycle (default 200)")
    parser.add_argument("--when", default=",".join(WHEN), help="SIGTERM moments, in rotation")
    parser.add_argument("--start", choices=("untrained", "int8"), default="untrained")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="INT8 checkpoint (default: make one)")
    parser.add_argument("--stop-on-crash", action="store_true")
    args = parser.parse_args(argv)
    args.whens = [w for w in args.when.split(",") if w]
    if not args.whens or set(args.whens) - set(WHEN):
        parser.error(f"--when takes a comma-separated subset of {','.join(WHEN)}")
    return args


def main(argv: list[str], prog: str) -> int:
    """The shutdown suite: `--cycles` workers SIGTERMed; a JSON line each, then a summary."""
    args = parse_args(argv, prog)
    from benchmarks import services
    from harness import int8_model

    services.point_settings_here()  # before anything reads crackq's settings
    os.environ["CRACKQ_BROKER_URL"] = BROKER_URL
    tmp = Path(tempfile.mkdtemp(prefix="crackq-shutdown-"))
    checkpoint = args.checkpoint or int8_model.checkpoint(tmp)
    if checkpoint is None:
        log.error("no INT8 checkpoint: this host would not serve cpu-openvino-int8")
        return 2
    rng = random.Random(args.seed)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with services.photos(args.photos) as photos, services.bench_database() as url:
        from db.session import make_engine

        engine = make_engine(url)
        rig = Rig(tmp, engine, BROKER_URL, photos.paths, photos.root)
        try:
            for i in range(args.cycles):
                when = args.whens[i % len(args.whens)]
                result = cycle(
                    rig, i, when, args.photos, checkpoint, rng, args.batch_size, args.start
                )
                results.append(result)
                print(json.dumps(result), flush=True)
                log.info(
                    "cycle %d/%d %s: exit %s in %.1f s%s; %d crashes so far",
                    i + 1,
                    args.cycles,
                    when,
                    result["exit_code"],
                    result["exit_s"],
                    " CRASHED" if result["crashed"] else "",
                    sum(r["crashed"] for r in results),
                )
                if result["crashed"] and args.stop_on_crash:
                    break
        finally:
            engine.dispose()
            fresh_broker(BROKER_URL).flushdb()
    print(json.dumps(summary(results, time.monotonic() - started)), flush=True)
    if any(r["crashed"] or r["hung"] for r in results):
        log.error("worker logs of the crashed cycles kept in %s", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0

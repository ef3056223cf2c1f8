"""e2e, trickle and rss: one real `crackq worker -Q inference` process, photos sent one per message."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from benchmarks.cpu import CpuMeter
from benchmarks.phases import Sampler, split
from benchmarks.services import Photos
from benchmarks.stats import (
    batch_stats,
    latency_parts,
    latency_percentiles,
    message_rows,
    rss_mb,
    utcnow,
)
from harness.procs import READY, Proc, worker
from harness.rows import Wait, wait_rows

log = logging.getLogger(__name__)


def largest_logged_batch(log_text: str) -> int:
    return max((int(n) for n in re.findall(r"batch of (\d+) predicted", log_text)), default=0)


def run(
    photos: Photos,
    engine: Engine,
    tmp: Path,
    n: int,
    want: set[str],
    rss_target: int,
    trickle_s: float = 40.0,
    checkpoint: Path | None = None,
    profile: int = 0,
    trickle_rate: float = 0.0,
) -> list[dict[str, Any]]:
    """The selected worker benchmarks in order e2e -> trickle -> rss, all on one worker.

    The worker serves `checkpoint` when given (the INT8 benchmark model), else untrained.
    With `profile` (samples per second), py-spy samples the worker during e2e: a `phases` line follows it.
    The trickle runs at `trickle_rate` messages/s, or half the e2e images/s when it is 0.
    """
    from worker.app import app
    from worker.enqueue import send

    out: list[dict[str, Any]] = []
    send(app, message_rows("bench-e2e", photos.cycle(0, n)))  # all queued before the worker
    log.info("e2e: %d messages queued; starting the worker", n)
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos.root), "CRACKQ_BATCH_SIZE": "32"}
    if checkpoint is not None:
        env["CRACKQ_MODEL_CHECKPOINT"] = str(checkpoint)
    with worker(tmp, "bench", env=env) as w:
        assert w.proc is not None
        lines, waited = measure_e2e(w, engine, n, profile)
        out += lines
        seen = waited.done
        readings = [{"images": seen, **rss_mb(w.proc.pid)}]
        if "trickle" in want and not waited.timed_out:
            rate = trickle_rate or lines[0]["images_per_s"] / 2
            result = trickle(engine, photos, seen, rate, trickle_s)
            out.append(result)
            seen += result["images"]
            readings.append({"images": seen, **rss_mb(w.proc.pid)})
        if "rss" in want:
            out.append(rss(engine, photos, w.proc.pid, seen, rss_target, readings))
    return out


def measure_e2e(w: Proc, engine: Engine, n: int, profile: int) -> tuple[list[dict[str, Any]], Wait]:
    """The queued `n` photos through the started worker `w`: the e2e line (and a `phases`
    line when `profile` samples per second are asked for), and the wait for their rows."""
    assert w.proc is not None
    w.wait_for_log(READY, 300)
    t_ready = time.monotonic()
    sampler = Sampler(w.proc.pid, profile_path(), rate=profile) if profile else None
    if sampler is not None:
        sampler.start()
    meter = CpuMeter(w.proc.pid)
    waited = wait_rows(engine, "bench-e2e", n, timeout_s=120 + n / 2)
    seconds = time.monotonic() - t_ready
    cpu = meter.ms_per_image(waited.done)
    if sampler is not None:
        sampler.stop()
    lines: list[dict[str, Any]] = [
        {
            "bench": "e2e",
            "images": n,
            "seconds": round(seconds, 2),
            "images_per_s": round(waited.done / seconds, 2),
            "largest_batch": largest_logged_batch(w.log()),
            **batch_stats(engine, "bench-e2e"),
            "cpu_ms_per_image": cpu,
            "timed_out": waited.timed_out,
            **rss_mb(w.proc.pid),
        }
    ]
    if sampler is not None:
        phases = split(sampler.out, waited.done, rate=profile, cpu_ms=cpu["worker"])
        lines.append({"bench": "phases", **phases, "raw": str(sampler.out)})
    return lines, waited


def profile_path() -> Path:
    """Where the e2e samples are kept (benchmarks/out/, ignored by git), for a flame graph."""
    out = Path(__file__).parent / "out" / "phases"
    out.mkdir(parents=True, exist_ok=True)
    return out / f"e2e-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.pyspy.txt"


def rss(
    engine: Engine,
    photos: Photos,
    pid: int,
    seen: int,
    target: int,
    readings: list[dict[str, Any]],
) -> dict[str, Any]:
    """More photos through the same worker until it has seen `target`; its RSS readings."""
    from worker.app import app
    from worker.enqueue import send

    more, timed_out = max(0, target - seen), False
    if more:
        send(app, message_rows("bench-rss", photos.cycle(seen, more)))
        log.info("rss: %d more messages queued (target %d images)", more, target)
        extra = wait_rows(engine, "bench-rss", more, timeout_s=120 + more / 2)
        seen, timed_out = seen + extra.done, extra.timed_out
        readings.append({"images": seen, **rss_mb(pid)})
    return {
        "bench": "rss",
        "readings": readings,
        "target_images": target,
        "growth_mb": round(readings[-1]["rss_mb"] - readings[0]["rss_mb"], 1),
        "full_run": target >= 20_000,
        "note": "default stops at 6,000 images; --with-rss or --only rss "
        "runs to 20,000 (photos cycled, distinct request ids)",
        "timed_out": timed_out,
    }


def trickle(
    engine: Engine,
    photos: Photos,
    first: int,
    rate: float,
    seconds: float,
    batch: str = "bench-trickle",
) -> dict[str, Any]:
    """One message at a time at `rate`/s for `seconds`; latency percentiles from the rows."""
    from worker.app import app
    from worker.enqueue import send

    rate = max(rate, 0.5)
    count = max(10, int(rate * seconds))
    refs = photos.cycle(first, count)
    log.info("trickle: %d messages at %.1f/s", count, rate)
    t0 = time.monotonic()
    for i, ref in enumerate(refs):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        row = message_rows(batch, [ref], first=i)[0]
        row["submitted_at"] = utcnow()  # stamped at the moment it is sent
        send(app, [row])
    sent_s = time.monotonic() - t0
    waited = wait_rows(engine, batch, count, timeout_s=120)
    stats = batch_stats(engine, batch)
    return {
        "bench": "trickle",
        "images": count,
        "target_rate_per_s": round(rate, 2),
        "achieved_send_rate_per_s": round(count / sent_s, 2),
        "send_seconds": round(sent_s, 1),
        **latency_percentiles(engine, batch),
        "p50_parts_ms": latency_parts(engine, batch),
        "largest_batch_in_rows": stats["largest_batch_in_rows"],
        "mean_batch_in_rows": stats["mean_batch_in_rows"],
        "failed": stats["failed"],
        "timed_out": waited.timed_out,
    }

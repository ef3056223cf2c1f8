"""What the review queue's rules cost a batch: its write with and without them, one JSON line.

A throwaway database holds `--rows` stored results (a third of them photos of `--assets`
assets, a visit a month); then batches of `--batch` new rows are written as a worker
writes them (worker.pipeline.write_rows: COPY, one upsert, commit), alternately without
and with the rules (worker.review, the default settings, rate 0.01 so the sample cap's
lock and count run in about a quarter of the batches). Reported: the median and p95 of
each, and of the rules alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from typing import Any


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--rows", type=int, default=100_000, help="stored results first")
    p.add_argument("--assets", type=int, default=1_000, help="assets among them")
    p.add_argument("--batches", type=int, default=200, help="batches of each kind")
    p.add_argument("--batch", type=int, default=32, help="rows per batch")
    return p.parse_args(argv)


FILL = """
INSERT INTO results (request_id, image_ref, status, label, confidence, crack_probability,
                     asset_id, inspection_id, captured_at, mode)
SELECT 'old-' || i, '/photos/' || i || '.jpg', 'succeeded',
       CASE WHEN p >= 0.5 THEN 'crack' ELSE 'no_crack' END, greatest(p, 1 - p), p,
       CASE WHEN i % 3 = 0 THEN 'asset-' || (i % :assets) END,
       CASE WHEN i % 3 = 0 THEN 'visit-' || (i / (3 * :assets)) END,
       CASE WHEN i % 3 = 0 THEN now() - interval '1 day' * (1000 - i / (3 * :assets)) END,
       'patch'
FROM (SELECT i, random() ^ 4 AS p FROM generate_series(1, :n) AS i) AS g
"""


def batch_rows(n: int, assets: int, rng: random.Random) -> list[dict[str, Any]]:
    """New rows as the pipeline writes them; most confident, a third of an asset's new visit."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for i in range(n):
        p = rng.random() ** 4 if rng.random() < 0.5 else 1 - rng.random() ** 4
        asset = f"asset-{rng.randrange(assets)}" if i % 3 == 0 else None
        rows.append(
            {
                "request_id": f"new-{uuid.uuid4()}",
                "image_ref": "/photos/new.jpg",
                "status": "succeeded",
                "label": "crack" if p >= 0.5 else "no_crack",
                "confidence": max(p, 1 - p),
                "crack_probability": p,
                "mode": "patch",
                "asset_id": asset,
                "inspection_id": "visit-new" if asset else None,
                "captured_at": now if asset else None,
                "finished_at": now,
            }
        )
    return rows


def main(argv: list[str], prog: str) -> int:
    from benchmarks import services

    args = parse_args(argv, prog)
    services.point_settings_here()
    from sqlalchemy import create_engine, text

    from benchmarks.cpu import cpu_model
    from db.session import make_sessionmaker
    from worker.jobs import ReviewPolicy
    from worker.pipeline import write_rows
    from worker.review import enter_review

    rng = random.Random(0)
    with services.bench_database() as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(FILL), {"n": args.rows, "assets": args.assets})
            conn.execute(text("ANALYZE results"))
        sessions = make_sessionmaker(engine)
        policy = ReviewPolicy()
        rules_ms: list[float] = []
        entered: dict[str, int] = {}

        def timed_rules(session: Any, ids: Any, p: Any) -> dict[str, int]:
            t0 = time.perf_counter()
            out = enter_review(session, ids, p)
            rules_ms.append((time.perf_counter() - t0) * 1000.0)
            for reason, n in out.items():
                entered[reason] = entered.get(reason, 0) + n
            return out

        import worker.pipeline as pipeline

        pipeline.enter_review = timed_rules  # type: ignore[assignment]
        without: list[float] = []
        with_rules: list[float] = []
        for i in range(args.batches * 2 + 10):
            rows = batch_rows(args.batch, args.assets, rng)
            on = i % 2 == 1
            t0 = time.perf_counter()
            write_rows(rows, sessions, policy if on else None)
            ms = (time.perf_counter() - t0) * 1000.0
            if i >= 10:  # warm-up: connections, prepared stages
                (with_rules if on else without).append(ms)
        rules_ms = rules_ms[5:]
        engine.dispose()

    def cut(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {
            "p50_ms": round(statistics.median(xs), 3),
            "p95_ms": round(xs[int(0.95 * (len(xs) - 1))], 3),
        }

    line = {
        "bench": "review_cost",
        "cpu": cpu_model(),
        "stored_rows": args.rows,
        "assets": args.assets,
        "batch": args.batch,
        "batches": args.batches,
        "write_without_rules": cut(without),
        "write_with_rules": cut(with_rules),
        "rules_alone": cut(rules_ms),
        "entered": entered,
        "settings": {
            "band": policy.band,
            "rate": policy.sample_rate,
            "cap": policy.sample_per_hour,
        },
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], "review_cost"))

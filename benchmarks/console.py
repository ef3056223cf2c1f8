"""What the console's pages cost at scale: server time of each page and photo, one JSON line.

A throwaway database holds `--rows` stored results (a third of them photos of `--assets`
assets, a visit a month; as the review suite fills it), `--open` open review entries
whose photos are `--side` px JPEGs on disk, and ten model versions. A `crackq ui`
process (loopback, no login) serves it; each page is fetched `--repeat` times over one
keep-alive connection, after one warm-up fetch. Reported: p50 and p95 in ms per page;
photos both cold (first rendering: read, decode, scale, encode) and cached.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--rows", type=int, default=100_000, help="stored results")
    p.add_argument("--assets", type=int, default=1_000, help="assets among them")
    p.add_argument("--open", type=int, default=500, help="open review entries")
    p.add_argument("--side", type=int, default=2048, help="long side of the queue's photos (px)")
    p.add_argument("--repeat", type=int, default=30, help="fetches of each page")
    return p.parse_args(argv)


ENTRIES = """
INSERT INTO review_queue (request_id, reason)
SELECT request_id, 'uncertain' FROM results WHERE request_id LIKE 'old-%'
ORDER BY abs(crack_probability - 0.5) LIMIT :n
"""


def cut(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "p50_ms": round(statistics.median(xs), 2),
        "p95_ms": round(xs[int(0.95 * (len(xs) - 1))], 2),
    }


def main(argv: list[str], prog: str) -> int:
    from benchmarks import services

    args = parse_args(argv, prog)
    services.point_settings_here()
    import requests
    from PIL import Image
    from sqlalchemy import create_engine, text

    from benchmarks.cpu import cpu_model
    from benchmarks.review_cost import FILL
    from harness.procs import CONSOLE_READY, console, free_port, listening, wait_until

    with services.bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(FILL), {"n": args.rows, "assets": args.assets})
            conn.execute(text(ENTRIES), {"n": args.open})
            ids = list(conn.scalars(text("SELECT request_id FROM review_queue ORDER BY 1")))
            for i, rid in enumerate(ids):  # every photo its own file, so cold means cold
                path = photos / f"{i}.jpg"
                Image.effect_noise((args.side, args.side * 3 // 4), 40 + i % 50).convert(
                    "RGB"
                ).save(path, quality=90)
                conn.execute(
                    text("UPDATE results SET image_ref = :p WHERE request_id = :r"),
                    {"p": str(path), "r": rid},
                )
            conn.execute(
                text(
                    "INSERT INTO model_versions (version, checkpoint_uri, sha256, architecture, "
                    "status, metrics) SELECT 'v' || i, '/m/v' || i || '.pt', repeat('0', 64), "
                    "'resnet50', 'candidate', '{\"auc\": 0.99}' FROM generate_series(1, 10) i"
                )
            )
            conn.execute(text("ANALYZE"))
            asset = conn.scalar(text("SELECT asset_id FROM results WHERE asset_id IS NOT NULL"))
        engine.dispose()

        port = free_port()
        env = {"CRACKQ_ALLOWED_ROOTS": str(photos), "CRACKQ_DATA_DIR": tmp}
        with console(Path(tmp), port, env) as proc:
            proc.wait_for_log(CONSOLE_READY, 60)
            assert wait_until(lambda: listening(port), 30), proc.log()
            base, web = f"http://127.0.0.1:{port}", requests.Session()

            def timed(path: str) -> float:
                t0 = time.perf_counter()
                r = web.get(base + path, timeout=60)
                ms = (time.perf_counter() - t0) * 1000.0
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                return ms

            pages = {
                "review": "/review",
                "assets": "/assets",
                "asset": f"/assets/{asset}",
                "models": "/models",
            }
            results = {}
            for name, path in pages.items():
                timed(path)
                results[name] = cut([timed(path) for _ in range(args.repeat)])
            n = min(args.repeat, len(ids) - 1)
            results["photo_cold"] = cut([timed(f"/photo/{rid}") for rid in ids[1 : n + 1]])
            results["photo_cached"] = cut([timed(f"/photo/{ids[1]}") for _ in range(args.repeat)])
            results["thumb_cold"] = cut(
                [timed(f"/photo/{rid}?side=160") for rid in ids[n + 1 : 2 * n + 1]]
            )
    line = {
        "bench": "console",
        "cpu": cpu_model(),
        "stored_rows": args.rows,
        "assets": args.assets,
        "open_entries": args.open,
        "photo_px": [args.side, args.side * 3 // 4],
        "repeat": args.repeat,
        "pages": results,
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], "console"))

"""The dense suite: the fully convolutional map against the tiled map, on mosaics of real patches.

For every mosaic (as the maps suite builds them: held-out ozgenel patches, about 30% with
no crack) and every `--overlaps` value, maps the photo twice over the same grid (stride
rounded to whole cells of the network, models.dense.dense_grid): tile by tile
(models.tiles.map_image) and block by block (models.dense.dense_map_image). Reports their
parity (tile label agreement at 0.5, mean and 99th-percentile |dp|, photo verdicts that
differ), their speed (tiles/s, the ratio) and, for each, cell F1 and photo accuracy.
One JSON line per overlap; a markdown table goes to stderr.
Run: .venv/bin/python -m benchmarks.run --suite dense --checkpoint PATH [--photos 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cpu import cpu_model
from benchmarks.maps import classifier, confusion, mosaics, predictor, rates
from benchmarks.tables import table
from harness.mosaics import DEFAULT_DATA, PATCH, build_mosaic, cell_scores, held_out_patches
from models.checkpoints import CheckpointError, expected_sha256, load_checkpoint
from models.checkpoints import model_from_checkpoint as weights_of
from models.datasets import DatasetError
from models.dense import block_tiles, dense_grid, dense_map_image
from models.dense_engine import dense_engine
from models.numerics import torch_threads
from models.openvino_backend import resolve_backend
from models.recipe import PRECISIONS
from models.tiles import CrackMap, map_image

log = logging.getLogger(__name__)
MIN_REGION_TILES = 2  # the worker's default (CRACKQ_MAP_MIN_REGION_TILES)


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", type=Path, required=True, help="a crackq checkpoint")
    ap.add_argument("--sha256", help="its expected sha256 (default: the .sha256 sidecar)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ozgenel folder")
    ap.add_argument("--photos", type=int, default=20, help="mosaics to build")
    ap.add_argument("--rows", type=int, default=8, help="patches down each mosaic")
    ap.add_argument("--cols", type=int, default=10, help="patches across each mosaic")
    ap.add_argument("--patch", type=int, default=PATCH, help="side of a mosaic cell in px")
    ap.add_argument("--tile", type=int, default=PATCH, help="side of a map tile in px")
    ap.add_argument(
        "--overlaps",
        type=lambda t: [float(v) for v in t.split(",") if v.strip()],
        default=[0.0, 0.5, 0.75, 0.9],
        help="comma-separated tile overlaps; each becomes the nearest whole-cell stride",
    )
    ap.add_argument("--block", type=int, default=448, help="dense block side in network px")
    ap.add_argument("--offset", choices=("aligned", "random"), default="random")
    ap.add_argument("--backend", choices=("auto", "torch", "openvino"), default="auto")
    ap.add_argument("--numerics", choices=PRECISIONS, default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32, help="tiles per forward pass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.photos < 1 or any(not 0.0 <= o < 1.0 for o in args.overlaps):
        ap.error("--photos must be >= 1 and --overlaps values in [0, 1)")
    return args


class Pair:
    """Sums for one overlap over the photos: parity, speed, and each path's scores."""

    def __init__(self) -> None:
        self.dp: list[np.ndarray] = []
        self.agree = 0
        self.tiles = 0
        self.verdicts_differ = 0
        self.seconds = {"tiled": 0.0, "dense": 0.0}
        self.cells = {k: np.zeros(4, dtype=np.int64) for k in ("tiled", "dense")}
        self.photos = {k: np.zeros(4, dtype=np.int64) for k in ("tiled", "dense")}

    def add(self, maps: dict[str, CrackMap], truth: np.ndarray, patch: int, offset: Any) -> None:
        a, b = maps["tiled"].probabilities, maps["dense"].probabilities
        self.dp.append(np.abs(a - b).ravel())
        self.agree += int(((a >= 0.5) == (b >= 0.5)).sum())
        self.tiles += a.size
        said = {k: m.crack_probability(MIN_REGION_TILES) >= 0.5 for k, m in maps.items()}
        self.verdicts_differ += said["tiled"] != said["dense"]
        for k, m in maps.items():
            scores = cell_scores(truth.shape, patch, offset, m.grid, m.probabilities)
            self.cells[k] += confusion(truth, scores >= 0.5)
            self.photos[k] += confusion([truth.any()], [said[k]])

    def line(self) -> dict[str, Any]:
        dp = np.concatenate(self.dp)
        speed = {k: self.tiles / s for k, s in self.seconds.items()}
        out: dict[str, Any] = {
            "tiles": self.tiles,
            "label_agreement": round(self.agree / self.tiles, 4),
            "mean_abs_dp": round(float(dp.mean()), 4),
            "p99_abs_dp": round(float(np.quantile(dp, 0.99)), 4),
            "photo_verdicts_differ": self.verdicts_differ,
            "tiled_tiles_per_s": round(speed["tiled"], 1),
            "dense_tiles_per_s": round(speed["dense"], 1),
            "speedup": round(speed["dense"] / speed["tiled"], 2),
        }
        for k in ("tiled", "dense"):
            cells, photos = rates(self.cells[k]), rates(self.photos[k])
            out[f"{k}_cell_f1"] = round(cells["f1"], 4)
            out[f"{k}_photo_accuracy"] = round(photos["accuracy"], 4)
        return out


def main(argv: list[str], prog: str) -> int:
    """The dense suite: one JSON line per overlap."""
    args = parse_args(argv, prog)
    try:
        crack, clean = held_out_patches(args.data)
        clf = classifier(args)
        payload = load_checkpoint(args.checkpoint, args.sha256 or expected_sha256(args.checkpoint))
    except (CheckpointError, DatasetError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    backend = resolve_backend(args.backend, clf.numerics.device)
    size, model = clf.input_size, weights_of(payload)
    engines = {}
    for overlap in args.overlaps:
        step = dense_grid(10**4, 10**4, args.tile, size, overlap).step
        engines[overlap] = dense_engine(model, clf.numerics, backend, size, step, args.threads)
    common = {"bench": "dense_maps", "checkpoint": clf.version, "numerics": clf.serving,
              "dense": engines[args.overlaps[0]].name, "block_px": args.block,
              "photos": args.photos, "grid": [args.rows, args.cols], "offset": args.offset,
              "host": cpu_model(), "torch_threads": args.threads or torch.get_num_threads()}  # fmt: skip
    pairs: dict[float, Pair] = defaultdict(Pair)
    with torch_threads(args.threads):
        for i, (rng, cracks, offset) in enumerate(mosaics(args)):
            m = build_mosaic(crack, clean, args.rows, args.cols, rng, cracks, args.patch, offset)
            for overlap in args.overlaps:
                dense = dense_grid(*m.image.size, args.tile, size, overlap)
                started = time.perf_counter()
                tiled = map_image(m.image, dense.grid, predictor(clf), size=size,
                                  batch=args.batch, threshold=clf.threshold)  # fmt: skip
                pairs[overlap].seconds["tiled"] += time.perf_counter() - started
                started = time.perf_counter()
                dmap = dense_map_image(m.image, dense, engines[overlap].predict,
                                       block=block_tiles(dense, args.block),
                                       threshold=clf.threshold)  # fmt: skip
                pairs[overlap].seconds["dense"] += time.perf_counter() - started
                pairs[overlap].add({"tiled": tiled, "dense": dmap}, m.truth, m.patch, m.offset)
            log.info("dense: photo %d/%d done", i + 1, args.photos)
    rows = []
    for overlap, pair in pairs.items():
        dense = dense_grid(10**4, 10**4, args.tile, size, overlap)
        rows.append({"overlap": overlap, "step_cells": dense.step, "stride": dense.grid.stride,
                     **pair.line()})  # fmt: skip
        print(json.dumps({**common, **rows[-1]}), flush=True)
    print(markdown(rows), file=sys.stderr)
    for engine in engines.values():
        engine.close()
    clf.close()
    return 0


def markdown(rows: list[dict[str, Any]]) -> str:
    return table(
        ["overlap", "stride", "agreement", "mean |dp|", "p99 |dp|", "verdicts differ",
         "tiled tiles/s", "dense tiles/s", "speed-up", "cell F1 tiled / dense",
         "photo acc. tiled / dense"],
        [[r["overlap"], r["stride"], r["label_agreement"], r["mean_abs_dp"], r["p99_abs_dp"],
          r["photo_verdicts_differ"], r["tiled_tiles_per_s"], r["dense_tiles_per_s"],
          r["speedup"], f"{r['tiled_cell_f1']:.3f} / {r['dense_cell_f1']:.3f}",
          f"{r['tiled_photo_accuracy']:.3f} / {r['dense_photo_accuracy']:.3f}"] for r in rows],
    )  # fmt: skip

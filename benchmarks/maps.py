"""The maps suite: crack maps of big mosaic photos of held-out patches, against patch truth.

Builds `--photos` mosaics (harness.mosaics) of `--rows` x `--cols` real ozgenel patches the
checkpoint's split never trained on: about 30% with no crack at all, the rest with a random
walk of 3-12 crack patches. Maps each with the checkpoint's model (models.tiles.map_image,
served as the worker serves it) for every `--overlaps` value, and scores per (overlap,
min_region_tiles): cell precision, recall and F1 (each patch scored by the tile nearest its
centre, harness.mosaics.cell_scores; crack iff >= 0.5), photo accuracy (the map's
crack_probability(min_region_tiles) >= 0.5 against "has a crack patch") and tiles/s of the
map step; beside them today's behaviour, the whole photo resized to one model input.
One JSON line per configuration, then a summary line; a markdown table goes to stderr.
Run: .venv/bin/python -m benchmarks.run --suite maps --checkpoint PATH [--photos 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cpu import cpu_model
from benchmarks.tables import table
from harness.mosaics import DEFAULT_DATA, PATCH, Mosaic, build_mosaic, cell_scores, held_out_patches
from models.checkpoints import CheckpointError, expected_sha256
from models.datasets import DatasetError
from models.network import CRACK_INDEX
from models.numerics import resolve_numerics, torch_threads
from models.openvino_backend import resolve_backend
from models.recipe import PRECISIONS
from models.serving import Classifier
from models.threshold import at_half
from models.tiles import map_image, tile_grid
from models.transforms import EvalPreset, stack
from worker.modelstore import ModelSource, build_classifier

log = logging.getLogger(__name__)
CLEAN_SHARE = 0.3  # of the photos, with no crack patch at all
WALK = (3, 12)  # crack patches in the other photos, inclusive


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", type=Path, required=True, help="a crackq checkpoint")
    ap.add_argument("--sha256", help="its expected sha256 (default: the .sha256 sidecar)")
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the ozgenel folder with manifest.csv (default: $CRACKQ_TEST_DATA)",
    )
    ap.add_argument("--photos", type=int, default=40, help="mosaics to build")
    ap.add_argument("--rows", type=int, default=10, help="patches down each mosaic")
    ap.add_argument("--cols", type=int, default=13, help="patches across each mosaic")
    ap.add_argument("--patch", type=int, default=PATCH, help="side of a mosaic cell in px")
    ap.add_argument("--tile", type=int, default=PATCH, help="side of a map tile in px")
    ap.add_argument(
        "--overlaps",
        type=_floats,
        default=[0.0, 0.25, 0.5],
        help="comma-separated tile overlaps, each in [0, 1)",
    )
    ap.add_argument(
        "--min-region-tiles",
        type=_ints,
        default=[1, 2],
        help="comma-separated: a photo is a crack with a region this big",
    )
    ap.add_argument(
        "--offset",
        choices=("aligned", "random"),
        default="aligned",
        help="patch grid at (0, 0), or at a random offset per photo (tiles then straddle patches)",
    )
    ap.add_argument(
        "--backend",
        choices=("auto", "torch", "openvino"),
        default="auto",
        help="as CRACKQ_BACKEND: auto = OpenVINO on the CPU when installed, else torch",
    )
    ap.add_argument(
        "--numerics",
        choices=PRECISIONS,
        default="auto",
        help="as CRACKQ_PRECISION: auto = bf16 where native; fp32 = the plain NCHW model",
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--batch", type=int, default=32, help="tiles per forward pass")
    ap.add_argument("--seed", type=int, default=0, help="picks the photos' patches and cracks")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.photos < 1 or args.rows < 1 or args.cols < 1 or args.batch < 1 or args.tile < 1:
        ap.error("--photos, --rows, --cols, --batch and --tile must be >= 1")
    if not args.overlaps or any(not 0.0 <= o < 1.0 for o in args.overlaps):
        ap.error("--overlaps must be values in [0, 1)")
    if not args.min_region_tiles or min(args.min_region_tiles) < 1:
        ap.error("--min-region-tiles must be values >= 1")
    if args.rows * args.cols < WALK[1]:
        ap.error(f"a mosaic needs at least {WALK[1]} cells for its crack walk")
    return args


def mosaics(args: argparse.Namespace) -> list[tuple[random.Random, int, tuple[int, int]]]:
    """Per photo: its own rng, how many crack cells and the grid offset (cheap to keep)."""
    clean = round(CLEAN_SHARE * args.photos)
    plan = []
    for i in range(args.photos):
        rng = random.Random(args.seed * 1_000_003 + i)
        cracks = 0 if i < clean else rng.randint(*WALK)
        offset = (0, 0)
        if args.offset == "random":
            offset = (rng.randrange(args.patch), rng.randrange(args.patch))
        plan.append((rng, cracks, offset))
    return plan


@dataclass
class Tally:
    """Counts for one configuration, summed over the photos."""

    cells: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))  # tp fp fn tn
    photos: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))
    tiles: int = 0
    map_s: float = 0.0


def confusion(truth: np.ndarray, said: np.ndarray) -> np.ndarray:
    truth, said = np.asarray(truth, dtype=bool), np.asarray(said, dtype=bool)
    return np.array([(truth & said).sum(), (~truth & said).sum(), (truth & ~said).sum(),
                     (~truth & ~said).sum()], dtype=np.int64)  # fmt: skip


def rates(counts: np.ndarray) -> dict[str, float]:
    tp, fp, fn, tn = (int(v) for v in counts)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = tp + fp + fn + tn
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": (tp + tn) / total if total else 0.0}  # fmt: skip


def predictor(clf: Classifier):
    def predict(tiles: np.ndarray) -> np.ndarray:
        return clf.predict(torch.from_numpy(tiles))[:, CRACK_INDEX].double().numpy()

    return predict


def whole_photo(clf: Classifier, m: Mosaic) -> bool:
    """Today's behaviour: the whole photo resized to one model input, at the threshold."""
    p = clf.predict(stack([EvalPreset(clf.input_size)(m.image)]))[0, CRACK_INDEX].item()
    return bool(at_half(p, clf.threshold) >= 0.5)


def score_photo(
    clf: Classifier, m: Mosaic, args: argparse.Namespace, tallies: dict[tuple[float, int], Tally]
) -> None:
    """Map `m` at every overlap and add its cells and verdicts to each configuration."""
    width, height = m.image.size
    has_crack = bool(m.truth.any())
    for overlap in args.overlaps:
        grid = tile_grid(width, height, args.tile, overlap)
        started = time.perf_counter()
        cmap = map_image(m.image, grid, predictor(clf), size=clf.input_size, batch=args.batch,
                         threshold=clf.threshold)  # fmt: skip
        map_s = time.perf_counter() - started
        scores = cell_scores(m.truth.shape, m.patch, m.offset, grid, cmap.probabilities)
        cells = confusion(m.truth, scores >= 0.5)
        for mrt in args.min_region_tiles:
            t = tallies[(overlap, mrt)]
            t.cells += cells
            t.photos += confusion([has_crack], [cmap.crack_probability(mrt) >= 0.5])
            t.tiles += len(grid)
            t.map_s += map_s


def row(key: tuple[float, int], t: Tally, baseline: np.ndarray, stride: int) -> dict[str, Any]:
    cells, photos = rates(t.cells), rates(t.photos)
    return {
        "overlap": key[0],
        "min_region_tiles": key[1],
        "stride": stride,
        "cell_precision": round(cells["precision"], 4),
        "cell_recall": round(cells["recall"], 4),
        "cell_f1": round(cells["f1"], 4),
        "cell_confusion": dict(zip(("tp", "fp", "fn", "tn"), t.cells.tolist(), strict=True)),
        "photo_accuracy": round(photos["accuracy"], 4),
        "photo_confusion": dict(zip(("tp", "fp", "fn", "tn"), t.photos.tolist(), strict=True)),
        "whole_photo_accuracy": round(rates(baseline)["accuracy"], 4),
        "tiles": t.tiles,
        "tiles_per_s": round(t.tiles / t.map_s, 1) if t.map_s else None,
        "map_s": round(t.map_s, 1),
    }


def summary(rows: list[dict[str, Any]], baseline: np.ndarray) -> dict[str, Any]:
    """The best configuration by photo accuracy, then cell F1, then speed."""
    best = max(rows, key=lambda r: (r["photo_accuracy"], r["cell_f1"], r["tiles_per_s"] or 0))
    return {
        "best_overlap": best["overlap"],
        "best_min_region_tiles": best["min_region_tiles"],
        "best_photo_accuracy": best["photo_accuracy"],
        "best_cell_f1": best["cell_f1"],
        "whole_photo_accuracy": round(rates(baseline)["accuracy"], 4),
        "whole_photo_confusion": dict(zip(("tp", "fp", "fn", "tn"), baseline.tolist(), strict=True)),
    }  # fmt: skip


def markdown(rows: list[dict[str, Any]]) -> str:
    return table(
        ["overlap", "min region tiles", "stride", "cell precision", "cell recall", "cell F1",
         "photo accuracy", "whole-photo accuracy", "tiles/s"],
        [[r["overlap"], r["min_region_tiles"], r["stride"], f"{r['cell_precision']:.4f}",
          f"{r['cell_recall']:.4f}", f"{r['cell_f1']:.4f}", f"{r['photo_accuracy']:.4f}",
          f"{r['whole_photo_accuracy']:.4f}", r["tiles_per_s"]] for r in rows],
    )  # fmt: skip


def classifier(args: argparse.Namespace) -> Classifier:
    """The checkpoint's model exactly as a worker loads it (worker.modelstore)."""
    numerics = resolve_numerics(args.device, args.numerics, channels_last=args.numerics != "fp32")
    sha = args.sha256 or expected_sha256(args.checkpoint)
    source = ModelSource(args.checkpoint.stem, args.checkpoint, sha)
    backend = resolve_backend(args.backend, numerics.device)
    return build_classifier(source, numerics, "never", backend, args.threads, args.batch)


def main(argv: list[str], prog: str) -> int:
    """The maps suite: one JSON line per (overlap, min_region_tiles) and a summary line."""
    args = parse_args(argv, prog)
    try:
        crack, clean = held_out_patches(args.data)
        clf = classifier(args)
    except (CheckpointError, DatasetError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    common = {"bench": "maps", "checkpoint": clf.version, "numerics": clf.serving,
              "threshold": round(clf.threshold, 4), "image_size": clf.input_size,
              "tile": args.tile, "patch": args.patch, "offset": args.offset,
              "photos": args.photos, "grid": [args.rows, args.cols], "seed": args.seed,
              "host": cpu_model(), "torch_threads": args.threads or torch.get_num_threads()}  # fmt: skip
    tallies = {(o, k): Tally() for o in args.overlaps for k in args.min_region_tiles}
    baseline = np.zeros(4, dtype=np.int64)
    started = time.perf_counter()
    with torch_threads(args.threads):
        for i, (rng, cracks, offset) in enumerate(mosaics(args)):
            m = build_mosaic(crack, clean, args.rows, args.cols, rng, cracks, args.patch, offset)
            baseline += confusion([m.truth.any()], [whole_photo(clf, m)])
            score_photo(clf, m, args, tallies)
            log.info("maps: photo %d/%d (%d crack cells) done, %.0f s", i + 1, args.photos,
                     cracks, time.perf_counter() - started)  # fmt: skip
    rows = []
    for key, t in tallies.items():
        stride = tile_grid(10**6, 10**6, args.tile, key[0]).stride
        rows.append(row(key, t, baseline, stride))
        print(json.dumps({**common, **rows[-1]}), flush=True)
    wall_s = round(time.perf_counter() - started, 1)
    print(json.dumps({**common, "overlap": "summary", **summary(rows, baseline), "wall_s": wall_s}))
    print(markdown(rows), file=sys.stderr)
    clf.close()
    return 0

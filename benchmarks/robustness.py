"""The robustness suite: a checkpoint scored on grouped held-out photos under controlled shifts.

Takes the validation split `crackq finetune --data DIR` makes (models.datasets.grouped_split
with the checkpoint's recipe val_fraction and seed: whole file-number blocks the run never
trained on), `--n` photos per class, applies each shift of models.shifts, predicts at the
checkpoint's image size and threshold, and prints one JSON line per shift (clean first),
then a summary line; a markdown table goes to stderr.
Run: .venv/bin/python -m benchmarks.run --suite robustness --checkpoint PATH [--n 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cpu import cpu_model
from benchmarks.tables import table
from harness.procs import ROOT
from models.checkpoints import (
    CheckpointError,
    expected_sha256,
    load_checkpoint,
    model_from_checkpoint,
    serving_config,
)
from models.datasets import DatasetError, Sample, from_folder, grouped_split
from models.evaluation import metrics
from models.imagedata import load_rgb
from models.network import CRACK_INDEX
from models.numerics import resolve_numerics, torch_threads
from models.recipe import PRECISIONS, Recipe
from models.serving import Classifier
from models.shiftcheck import shift_figures
from models.shifts import CLEAN, SHIFTS, Shift, rng_for
from models.transforms import EvalPreset, stack

log = logging.getLogger(__name__)
DEFAULT_DATA = os.environ.get("CRACKQ_TEST_DATA", str(ROOT.parent / "shared" / "data" / "ozgenel"))


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument("--checkpoint", type=Path, required=True, help="a crackq checkpoint")
    ap.add_argument("--sha256", help="its expected sha256 (default: the .sha256 sidecar)")
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(DEFAULT_DATA),
        help="a folder with Positive/ and Negative/ (as `crackq finetune --data`)",
    )
    ap.add_argument("--n", type=int, default=500, help="held-out photos per class")
    ap.add_argument(
        "--shifts",
        default=",".join(SHIFTS),
        help=f"comma-separated, from: {', '.join(SHIFTS)} (clean always runs)",
    )
    ap.add_argument(
        "--numerics",
        choices=PRECISIONS,
        default="fp32",
        help="inference precision (fp32: the plain classifier, NCHW)",
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="picks the photos and seeds the shifts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    unknown = set(filter(None, args.shifts.split(","))) - set(SHIFTS)
    if unknown:
        ap.error(f"unknown shift(s) {sorted(unknown)}; choose from {', '.join(SHIFTS)}")
    if args.n < 1 or args.batch < 1:
        ap.error("--n and --batch must be >= 1")
    return args  # fmt: skip


def held_out(data: Path, payload: dict[str, Any], per_class: int, seed: int) -> list[Sample]:
    """`per_class` photos of each class from the split the checkpoint's run validated on."""
    # Only the two fields the split needs: a recipe from another version may not parse whole.
    recipe, default = payload.get("recipe") or {}, Recipe()
    val_fraction = float(recipe.get("val_fraction", default.val_fraction))
    val = grouped_split(from_folder(data), val_fraction, int(recipe.get("seed", default.seed))).val
    picked: list[Sample] = []
    for label in sorted({lab for _, lab in val}):
        mine = [s for s in val if s[1] == label]
        picked += sorted(random.Random(seed).sample(mine, min(per_class, len(mine))))
    return picked


def batches(
    samples: Sequence[Sample], shift: Shift, size: int, batch: int, seed: int
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """uint8 pixel batches of shifted photos: decoded as validation decodes (load_rgb), shifted,
    then resized and cropped by the eval preset, so a shift acts before the model's resize."""
    preset = EvalPreset(size)
    for start in range(0, len(samples), batch):
        chunk = range(start, min(start + batch, len(samples)))
        pixels = [
            preset(shift(load_rgb(samples[i][0], size), rng_for(seed, shift.name, i)))
            for i in chunk
        ]
        yield stack(pixels), [samples[i][1] for i in chunk]


def score(
    clf: Classifier, samples: Sequence[Sample], shift: Shift, batch: int, seed: int
) -> dict[str, Any]:
    """Accuracy, F1 and ROC AUC at the checkpoint's threshold under one shift."""
    started = time.perf_counter()
    probs, labels = [], []
    for pixels, y in batches(samples, shift, clf.input_size, batch, seed):
        probs.append(clf.predict(pixels)[:, CRACK_INDEX].double().numpy())
        labels += y
    m = metrics(np.asarray(labels), np.concatenate(probs), clf.threshold)
    return {
        **shift_figures(shift, m),
        "confusion": m["confusion"],
        "photos": m["n"],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean accuracy and F1 over the shifts (clean excluded) and the worst shift."""
    clean, shifted = rows[0], rows[1:] or rows[:1]
    worst = min(shifted, key=lambda r: r["accuracy"])
    return {
        "clean_accuracy": clean["accuracy"],
        "clean_f1": clean["f1"],
        "mean_accuracy": round(float(np.mean([r["accuracy"] for r in shifted])), 4),
        "mean_f1": round(float(np.mean([r["f1"] for r in shifted])), 4),
        "worst_shift": worst["shift"],
        "worst_accuracy": worst["accuracy"],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    clean = rows[0]["accuracy"]
    return table(
        ["shift", "simulates", "accuracy", "vs clean", "F1", "ROC AUC", "photos"],
        [[r["shift"], r["simulates"], f"{r['accuracy']:.4f}", f"{r['accuracy'] - clean:+.4f}",
          f"{r['f1']:.4f}", "-" if r["auc"] is None else f"{r['auc']:.4f}", r["photos"]]
         for r in rows],
    )  # fmt: skip


def classifier(args: argparse.Namespace, payload: dict[str, Any]) -> Classifier:
    """The checkpoint's model as serving runs it, at its image size and threshold."""
    config = serving_config(payload)
    numerics = resolve_numerics(args.device, args.numerics, channels_last=args.numerics != "fp32")
    version = str(payload.get("version") or args.checkpoint.name)
    return Classifier(
        model_from_checkpoint(payload), numerics, version, input_size=config.image_size,
        threshold=config.threshold, max_batch=args.batch,
    )  # fmt: skip


def main(argv: list[str], prog: str) -> int:
    """The robustness suite: one JSON line per shift and a summary line on stdout."""
    args = parse_args(argv, prog)
    try:
        payload = load_checkpoint(args.checkpoint, args.sha256 or expected_sha256(args.checkpoint))
        samples = held_out(args.data, payload, args.n, args.seed)
    except (CheckpointError, DatasetError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    clf = classifier(args, payload)
    common = {"bench": "robustness", "checkpoint": clf.version, "numerics": clf.serving,
              "threshold": round(clf.threshold, 4), "image_size": clf.input_size,
              "host": cpu_model(), "torch_threads": args.threads or torch.get_num_threads()}  # fmt: skip
    log.info("robustness: %d held-out photos from %s, %s", len(samples), args.data, clf.serving)
    started = time.perf_counter()
    rows = []
    with torch_threads(args.threads):
        for shift in [CLEAN] + [SHIFTS[n] for n in args.shifts.split(",") if n]:
            rows.append(score(clf, samples, shift, args.batch, args.seed))
            print(json.dumps({**common, **rows[-1]}), flush=True)
    wall_s = round(time.perf_counter() - started, 1)
    end = {"shift": "summary", **summary(rows), "photos": len(samples), "wall_s": wall_s}
    print(json.dumps({**common, **end}))
    print(markdown(rows), file=sys.stderr)
    clf.close()
    return 0

"""The demo's photos: a folder or synthetic images, split by file group, scored at the end."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from models.datasets import Sample, from_folder, grouped_split
from models.network import CLASSES
from models.synthetic import make_synthetic_dataset


class DemoPhotos(NamedTuple):
    manifest: Path  # training photos as a path,label CSV
    held_out: list[Sample]  # photos from other file-number groups, to classify


class Confusion(NamedTuple):
    tp: int
    fp: int
    tn: int
    fn: int
    failed: int


def demo_photos(
    data: Path | None,
    train_images: int,
    classify: int,
    data_dir: Path,
    work: Path,
    say: Callable[[str], None],
) -> DemoPhotos:
    """Balanced training and held-out photos from `data`, or synthetic ones drawn here."""
    if data is not None:
        samples = from_folder(data)
    else:
        folder = data_dir / "demo-data"
        per_class = (train_images + classify) // 2 + 200
        say(f"no --data: generating {2 * per_class} synthetic crack / no-crack images in {folder}")
        samples = make_synthetic_dataset(folder, per_class, seed=0)
    parts = grouped_split(samples, 0.3, seed=1)
    manifest = _write_manifest(work / "train.csv", _balanced(parts.train, train_images))
    return DemoPhotos(manifest, _balanced(parts.val, classify))


def confusion(held_out: Sequence[Sample], rows: Sequence[Any]) -> Confusion:
    """Counts of the held-out photos' stored labels against their truth; missing rows fail."""
    tp = fp = tn = fn = failed = 0
    for (_, y), row in zip(held_out, rows, strict=True):
        if row is None or row.status != "succeeded":
            failed += 1
            continue
        pred = CLASSES.index(row.label)
        tp += pred == 1 and y == 1
        tn += pred == 0 and y == 0
        fp += pred == 1 and y == 0
        fn += pred == 0 and y == 1
    return Confusion(tp, fp, tn, fn, failed)


def _balanced(samples: Sequence[Sample], n: int) -> list[Sample]:
    by_class = [[s for s in samples if s[1] == c] for c in range(len(CLASSES))]
    per = max(1, n // len(CLASSES))
    return [s for group in by_class for s in group[:per]]


def _write_manifest(path: Path, samples: Sequence[Sample]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows((p, CLASSES[y]) for p, y in samples)
    return path

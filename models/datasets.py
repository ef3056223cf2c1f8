"""Labelled image samples: folder and manifest sources, grouped and explicit train/val splits."""

from __future__ import annotations

import csv
import logging
import random
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from models.formats import IMAGE_SUFFIXES
from models.network import CLASSES

log = logging.getLogger(__name__)

Sample = tuple[str, int]  # (path, label); label 1 = crack, index into CLASSES
Groups = dict[str, str]  # resolved path -> the manifest's `group` (source photo, asset)
FOLDER_LABELS = {"positive": 1, "crack": 1, "negative": 0, "no_crack": 0}
MANIFEST_LABELS = {"crack": 1, "positive": 1, "1": 1, "no_crack": 0, "negative": 0, "0": 0}
GROUP_SIZE = 200  # ozgenel: neighbouring crack patch numbers come from one photo


class DatasetError(ValueError):
    """A dataset source that cannot be used, with a message saying why."""


class Split(NamedTuple):
    train: list[Sample]
    val: list[Sample]


def from_folder(root: Path | str) -> list[Sample]:
    """Images under `root/Positive|crack` (label 1) and `root/Negative|no_crack` (label 0).

    Folder names match case-insensitively; images may sit in nested sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    found: dict[int, list[Path]] = defaultdict(list)
    dirs = [d for d in root.iterdir() if d.is_dir() and d.name.lower() in FOLDER_LABELS]
    if not dirs:
        raise DatasetError(
            f"{root} has no class folders: expected sub-folders Positive/Negative "
            f"or crack/no_crack, found {sorted(d.name for d in root.iterdir())[:10]}"
        )
    for d in dirs:
        found[FOLDER_LABELS[d.name.lower()]].extend(
            p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    for label, name in enumerate(CLASSES):
        if not found[label]:
            raise DatasetError(f"{root}: class {name!r} has no images ({_folder_hint(label)})")
    return [(str(p), label) for label in sorted(found) for p in sorted(found[label])]


def _folder_hint(label: int) -> str:
    names = [n for n, lab in FOLDER_LABELS.items() if lab == label]
    return f"expected image files in a sub-folder named one of {names}"


def from_manifest(csv_path: Path | str) -> list[Sample]:
    """Rows `path,label` of a CSV; relative paths resolve against the CSV's folder.

    Labels: crack/no_crack, Positive/Negative or 1/0. Every listed file must exist.
    """
    return read_manifest(csv_path)[0]


def read_manifest(csv_path: Path | str) -> tuple[list[Sample], Groups]:
    """from_manifest's samples, and each file's group when the CSV has a `group` column.

    The group names what the photo came from (a source photo, an asset): a split keeps
    each group on one side. A blank group cell makes the file a group of its own.
    """
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"manifest {csv_path} cannot be read: {exc}") from exc
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(f"manifest {csv_path} needs a header with columns path,label and rows")
    samples, missing, groups = [], [], {}
    grouped = "group" in rows[0]
    for line, row in enumerate(rows, start=2):
        label = MANIFEST_LABELS.get((row["label"] or "").strip().lower())
        if label is None:
            raise DatasetError(
                f"manifest {csv_path} line {line}: label {row['label']!r} is not one of "
                f"{sorted(MANIFEST_LABELS)}"
            )
        path = csv_path.parent / (row["path"] or "").strip()
        if not path.is_file():
            missing.append(str(path))
        samples.append((str(path), label))
        if grouped:
            groups[str(path.resolve())] = (row["group"] or "").strip() or f"file:{path}"
    if missing:
        raise DatasetError(
            f"manifest {csv_path}: {len(missing)} listed file(s) are missing or unreadable, "
            f"e.g. {missing[:3]}"
        )
    return samples, groups


def combine(*sources: Iterable[Sample]) -> list[Sample]:
    """Concatenate sample lists, dropping repeats of a path; a path with two labels is an error."""
    first: dict[str, Sample] = {}  # resolved path -> the sample as first given
    for path, label in (s for source in sources for s in source):
        if first.setdefault(str(Path(path).resolve()), (path, label))[1] != label:
            raise DatasetError(f"{path} is labelled both {CLASSES[0]} and {CLASSES[1]}")
    return list(first.values())


def group_keys(samples: Sequence[Sample], group_size: int = GROUP_SIZE) -> list[tuple]:
    """A group id per sample: runs of `group_size` consecutive file numbers per class and folder.

    Files are ranked by the number their stem ends in, and ranks are cut into runs so
    that a subsample still forms contiguous number ranges. Small classes get smaller runs
    (at least ~20 groups per class). Files without a number are each their own group.
    """
    numbered: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    keys: list[tuple] = [()] * len(samples)
    for i, (path, label) in enumerate(samples):
        p = Path(path)
        m = re.search(r"(\d+)$", p.stem)
        if m:
            numbered[(label, str(p.parent))].append((int(m.group(1)), i))
        else:
            keys[i] = (label, "file", path)
    for (label, parent), items in numbered.items():
        size = max(1, min(group_size, len(items) // 20))
        for rank, (_, i) in enumerate(sorted(items)):
            keys[i] = (label, parent, rank // size)
    return keys


def grouped_split(
    samples: Sequence[Sample], val_fraction: float, seed: int = 0, group_size: int = GROUP_SIZE
) -> Split:
    """Split per class by whole groups (see group_keys), about `val_fraction` into val.

    No group lands on both sides, so near-duplicate patches of one photo cannot leak
    from training into validation. Each class keeps at least one group on each side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    keys = group_keys(samples, group_size)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    rng = random.Random(seed)
    val_idx: set[int] = set()
    for label in sorted({lab for _, lab in samples}):
        mine = sorted((k for k in groups if k[0] == label), key=repr)
        rng.shuffle(mine)
        target = val_fraction * sum(len(groups[k]) for k in mine)
        if len(mine) < 2:
            log.warning("class %s has one group only; it cannot be split", CLASSES[label])
        taken = 0
        for key in mine[:-1]:
            if taken >= target or (taken and taken + len(groups[key]) / 2 > target):
                break
            val_idx.update(groups[key])
            taken += len(groups[key])
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return Split(train, val)


def group_of(samples: Sequence[Sample], groups: Groups) -> list[str | None]:
    """Each sample's manifest group, or None for a file no manifest grouped."""
    return [groups.get(str(Path(path).resolve())) for path, _ in samples]


def manifest_split(
    samples: Sequence[Sample], groups: Groups, val_fraction: float, seed: int = 0
) -> Split:
    """Split by the manifests' groups, stratified by class, about `val_fraction` into val.

    Every group lands wholly on one side; files no manifest grouped keep their
    file-number groups (group_keys). One fold of scikit-learn's StratifiedGroupKFold
    with about 1/val_fraction folds: the first fold that leaves each class on both
    sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    named = group_of(samples, groups)
    fallback = group_keys(samples)
    keys = [("group", g) if g is not None else k for g, k in zip(named, fallback, strict=True)]
    ids: dict[tuple, int] = {}
    codes = np.array([ids.setdefault(k, len(ids)) for k in keys])
    if len(ids) < 2:
        raise DatasetError(f"{len(ids)} group(s): a grouped split needs at least two")
    labels = np.array([label for _, label in samples])
    k = max(2, min(round(1 / min(val_fraction, 0.5)), len(ids)))
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # too few members of a class for k folds: handled below
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        candidates = list(folds.split(np.zeros(len(labels)), labels, codes))
    classes = set(labels.tolist())

    def both_sides(fold: tuple[np.ndarray, np.ndarray]) -> bool:
        return all(set(labels[part].tolist()) == classes for part in fold)

    train_idx, val_idx = next((f for f in candidates if both_sides(f)), candidates[0])
    if not both_sides((train_idx, val_idx)):
        log.warning("no grouped split leaves every class on both sides; check the groups")
    return Split([samples[i] for i in sorted(train_idx)], [samples[i] for i in sorted(val_idx)])


def explicit_split(train: Sequence[Sample], val: Sequence[Sample]) -> Split:
    """Use a given validation set; refuses a file that is in both."""
    if not train or not val:
        raise DatasetError("both the training and the validation set need images")
    seen = {str(Path(p).resolve()) for p, _ in train}
    overlap = [p for p, _ in val if str(Path(p).resolve()) in seen]
    if overlap:
        raise DatasetError(
            f"{len(overlap)} validation image(s) are also in the training set, e.g. {overlap[:3]}"
        )
    return Split(list(train), list(val))


def class_counts(samples: Iterable[Sample]) -> dict[str, int]:
    """Images per class name."""
    counts = dict.fromkeys(CLASSES, 0)
    for _, label in samples:
        counts[CLASSES[label]] += 1
    return counts

"""Training data for a run: folders, manifests and operator labels, split, and how each is read."""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from db import review, runs
from models.datasets import (
    DatasetError,
    Groups,
    Sample,
    Split,
    class_counts,
    combine,
    explicit_split,
    from_folder,
    grouped_split,
    manifest_split,
    read_manifest,
)
from models.network import CLASSES
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError
from worker.sources import SourceLimits, allowed_root, local_path, read_bytes

if TYPE_CHECKING:
    from worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Where a run's images come from; stored (as JSON) with the run."""

    folders: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    use_labels: bool = False
    val_folder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        return cls(**data)

    def describe(self) -> str:
        parts = [f"folder {f}" for f in self.folders] + [f"manifest {m}" for m in self.manifests]
        if self.use_labels:
            parts.append("operator labels")
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class TrainingImages:
    """The Loader (models.datasets) for a run's images; pickles into DataLoader workers.

    `trusted` holds the files the operator named on the command line (folders, manifests,
    the validation folder): read as they are. Every other ref - those operators' labels
    point at, written by producers - goes through the inference reader: allowed roots
    for local paths, the vetted http(s) fetcher, s3, the byte limit. Both are decoded
    within the inference decoder's limits (CRACKQ_MAX_IMAGE_PIXELS, CRACKQ_IMAGE_FORMATS).
    """

    limits: SourceLimits
    max_pixels: int
    formats: tuple[str, ...]
    trusted: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings, trusted: frozenset[str]) -> TrainingImages:
        limits = SourceLimits.from_settings(settings)
        formats = tuple(settings.image_formats)
        return cls(limits, settings.max_image_pixels, formats, trusted)

    def __call__(self, ref: str, size: int) -> Image.Image:
        data = Path(ref).read_bytes() if ref in self.trusted else read_bytes(ref, self.limits)
        return decode_image(data, max_pixels=self.max_pixels, target=size, formats=self.formats)


class TrainingData(NamedTuple):
    parts: Split
    load: TrainingImages
    labels_skipped: dict[str, int]  # why labelled refs were left out -> how many
    # operator labels: "labelled" (on stored photos), "used", "from_review" (of those used,
    # answers from the review queue, crackq review); empty without --labels
    labels: dict[str, int] = {}
    # the manifests' `group` column, resolved path -> group; empty when none has one
    groups: Groups = {}


def prepare(
    spec: DataSpec,
    sessions: sessionmaker[Session] | None,
    settings: Settings,
    val_fraction: float,
    seed: int,
) -> TrainingData:
    """Every labelled sample the spec names, split, with the loader to read them through.

    Validation is by the manifests' groups when any manifest has a `group` column (files
    without one keep their file-number groups), else by whole file-number groups, or the
    explicit validation folder. DatasetError when there are no images.
    """
    operator: list[list[Sample]] = []
    groups: Groups = {}
    for folder in spec.folders:
        if not Path(folder).is_dir():
            raise DatasetError(f"training data folder {folder} does not exist or is not readable")
        operator.append(from_folder(folder))
    for manifest in spec.manifests:
        if not Path(manifest).is_file():
            raise DatasetError(f"training manifest {manifest} does not exist or is not readable")
        listed, named = read_manifest(manifest)
        operator.append(listed)
        groups.update(named)
    labelled: list[Sample] = []
    skipped: dict[str, int] = {}
    counts: dict[str, int] = {}
    if spec.use_labels and sessions is not None:
        labelled, skipped, counts = _labelled(sessions, settings.allowed_roots)
    # operator sources first: a file both named and labelled keeps the operator's spelling
    samples = combine(*operator, labelled)
    if not samples:
        raise DatasetError(f"no training images found in {spec.describe()}")
    if spec.val_folder:
        val = from_folder(spec.val_folder)
        operator.append(val)
        parts = explicit_split(samples, val)
    elif groups:
        parts = manifest_split(samples, groups, val_fraction, seed)
    else:
        parts = grouped_split(samples, val_fraction, seed)
    trusted = frozenset(path for source in operator for path, _ in source)
    load = TrainingImages.from_settings(settings, trusted)
    return TrainingData(parts, load, skipped, counts, groups)


def _labelled(
    sessions: sessionmaker[Session], roots: Sequence[Path]
) -> tuple[list[Sample], dict[str, int], dict[str, int]]:
    """Operators' labels as samples, leaving out refs the reader would refuse unread.

    Also their counts: labelled, used, and used ones that are review-queue answers.
    """
    with sessions() as session:
        rows = runs.labelled_refs(session)
        reviewed = review.reviewed_refs(session)
    samples, skipped = [], Counter[str]()
    for ref, label in rows:
        reason = _refused(ref, roots)
        if reason:
            skipped[reason] += 1
        else:
            samples.append((ref, CLASSES.index(label)))
    if rows:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        log.log(
            logging.WARNING if skipped else logging.INFO,
            "operator labels: using %d of %d labelled refs%s",
            len(samples),
            len(rows),
            f"; skipped {sum(skipped.values())}: {why}" if skipped else "",
        )
    from_review = sum(ref in reviewed for ref, _ in samples)
    counts = {"labelled": len(rows), "used": len(samples), "from_review": from_review}
    return samples, dict(skipped), counts


# What the run's summary says for each reason worker.sources refuses a reference unread.
REFUSED = {
    ErrorCode.INVALID_REQUEST: "not a valid reference",
    ErrorCode.UNSUPPORTED_SCHEME: "unsupported scheme",
    ErrorCode.PATH_NOT_ALLOWED: "outside the allowed roots (CRACKQ_ALLOWED_ROOTS)",
}


def _refused(ref: str, roots: Sequence[Path]) -> str | None:
    """Why worker.sources.read_bytes would refuse `ref` before reading it, or None.

    Only a first sieve, so that the run's sample list (and what is drawn from it later)
    holds no ref a reader must refuse: the reader checks again when it reads.
    """
    try:
        path = local_path(ref)
        if path is not None:
            allowed_root(ref, path, roots)
    except ImageError as exc:
        return REFUSED.get(exc.code, str(exc))
    return None


def summary(
    data: TrainingData, spec: DataSpec, skipped: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """The run's data summary: sources, class counts, the split, what was left out and why."""
    out: dict[str, Any] = {
        "sources": spec.describe(),
        "train": class_counts(data.parts.train),
        "val": class_counts(data.parts.val),
        "split": _split_kind(data, spec),
    }
    if data.labels:
        out["labels"] = data.labels
    if data.labels_skipped:
        out["labels_skipped"] = data.labels_skipped
    return {**out, "skipped": len(skipped), "skipped_examples": list(skipped[:20])}


def _split_kind(data: TrainingData, spec: DataSpec) -> str:
    if spec.val_folder:
        return "explicit validation folder"
    if data.groups:
        return f"grouped by the manifests' group column ({len(set(data.groups.values()))} groups)"
    return "grouped by file-number ranges"


def patch_side(data: TrainingData, sample: int = 32) -> int | None:
    """The median shorter side of up to `sample` of the operator's training photos.

    Serving maps big photos with tiles of this side (worker.mapping): the scale the model
    learned at. Read from the files' headers only; None when no operator file is readable.
    """
    sides: list[int] = []
    for ref, _ in data.parts.train:
        if len(sides) >= sample:
            break
        if ref not in data.load.trusted:
            continue
        try:
            with Image.open(ref) as img:
                sides.append(min(img.size))
        except (OSError, ValueError):
            continue
    return int(statistics.median(sides)) if sides else None

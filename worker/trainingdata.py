"""Training data for a run: folders, CSV manifests and operator labels, split by groups."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import runs
from models.classifier import CLASSES
from models.datasets import (
    DatasetError,
    Sample,
    Split,
    class_counts,
    combine,
    explicit_split,
    from_folder,
    from_manifest,
    grouped_split,
)


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


def gather(spec: DataSpec, sessions: sessionmaker[Session] | None) -> list[Sample]:
    """Every labelled sample the spec names (DatasetError when there are none)."""
    sources: list[list[Sample]] = []
    for folder in spec.folders:
        if not Path(folder).is_dir():
            raise DatasetError(f"training data folder {folder} does not exist or is not readable")
        sources.append(from_folder(folder))
    for manifest in spec.manifests:
        if not Path(manifest).is_file():
            raise DatasetError(f"training manifest {manifest} does not exist or is not readable")
        sources.append(from_manifest(manifest))
    if spec.use_labels and sessions is not None:
        with sessions() as session:
            labelled = runs.labelled_refs(session)
        local = [(_local_path(ref), CLASSES.index(label)) for ref, label in labelled]
        sources.append([(p, y) for p, y in local if p is not None])
    samples = combine(*sources)
    if not samples:
        raise DatasetError(f"no training images found in {spec.describe()}")
    return samples


def _local_path(ref: str) -> str | None:
    path = ref.removeprefix("file://")
    return path if "://" not in path and Path(path).is_file() else None


def split(spec: DataSpec, samples: list[Sample], val_fraction: float, seed: int) -> Split:
    """Validation by whole file-number groups, or the explicit validation folder."""
    if spec.val_folder:
        return explicit_split(samples, from_folder(spec.val_folder))
    return grouped_split(samples, val_fraction, seed)


def summary(parts: Split, spec: DataSpec) -> dict[str, Any]:
    return {
        "sources": spec.describe(),
        "train": class_counts(parts.train),
        "val": class_counts(parts.val),
        "split": "explicit validation folder"
        if spec.val_folder
        else "grouped by file-number ranges",
    }

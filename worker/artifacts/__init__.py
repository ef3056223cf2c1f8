"""Artifact stores for checkpoints and run reports, chosen by URL (CRACKQ_ARTIFACT_STORE).

`postgres` (chunked rows in the crackq database), `s3://bucket/prefix`, or `file:///dir`
and plain folders. A registry row's URL names its store: `pg://artifact/ID`, `s3://...`,
or a local path, so rows written under another setting keep resolving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from worker.artifacts.base import (
    ArtifactError,
    ArtifactStore,
    ArtifactTampered,
    Stored,
    local_path_of,
)
from worker.artifacts.filestore import FileStore
from worker.artifacts.pgstore import PREFIX as PG_PREFIX
from worker.artifacts.pgstore import PostgresStore
from worker.artifacts.s3store import S3Store

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "ArtifactTampered",
    "Stored",
    "Stores",
    "is_local",
    "local_path_of",
]


def is_local(url: str) -> bool:
    """A plain path or file:// URL, read where it lies (registry rows from before the store)."""
    return local_path_of(url) is not None


@dataclass(frozen=True)
class Stores:
    """What opening any store takes: the database (postgres) and the S3 endpoint."""

    sessions: sessionmaker[Session] | None
    s3_endpoint_url: str | None = None

    def for_writing(self, setting: str) -> ArtifactStore:
        """The store CRACKQ_ARTIFACT_STORE names."""
        if setting == "postgres":
            return self._postgres()
        if setting.startswith("s3://"):
            return S3Store(setting, self.s3_endpoint_url)
        path = local_path_of(setting)
        if path is None:
            raise ArtifactError(f"unknown artifact store {setting!r}")
        return FileStore(path)

    def for_url(self, url: str) -> ArtifactStore:
        """The store a stored artifact's URL belongs to."""
        if url.startswith(PG_PREFIX):
            return self._postgres()
        if url.startswith("s3://"):
            return S3Store(url, self.s3_endpoint_url)
        path = local_path_of(url)
        if path is None:
            raise ArtifactError(f"{url!r}: no artifact store reads this scheme")
        return FileStore(path.parent)

    def fetch(self, url: str, sha256: str, dest: Path) -> Path:
        """Copy the artifact at `url` to `dest`, verified against `sha256`, atomically."""
        return self.for_url(url).fetch(url, sha256, dest)

    def _postgres(self) -> PostgresStore:
        if self.sessions is None:
            raise ArtifactError("the postgres artifact store needs the database")
        return PostgresStore(self.sessions)

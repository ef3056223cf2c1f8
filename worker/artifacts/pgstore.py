"""The postgres store: artifacts as chunked rows of the crackq database (db/artifacts.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db import artifacts
from worker.artifacts.base import (
    CHUNK,
    ArtifactError,
    ArtifactTampered,
    AtomicWriter,
    Stored,
    read_blocks,
)

PREFIX = "pg://artifact/"


class PostgresStore:
    """One transaction per put; chunks of `chunk` bytes, one at a time in memory."""

    def __init__(self, sessions: sessionmaker[Session], chunk: int = CHUNK) -> None:
        self.sessions = sessions
        self.chunk = chunk

    def put(self, local_path: Path, key: str | None = None) -> Stored:
        digest, size = hashlib.sha256(), 0

        def hashed() -> Iterator[bytes]:
            nonlocal size
            for block in read_blocks(Path(local_path), self.chunk):
                digest.update(block)
                size += len(block)
                yield block

        with self.sessions() as session, session.begin():
            artifact_id = artifacts.begin(session, key or Path(local_path).name)
            artifacts.copy_in(session, artifact_id, hashed())
            artifacts.finish(session, artifact_id, digest.hexdigest(), size)
        return Stored(f"{PREFIX}{artifact_id}", digest.hexdigest(), size)

    def fetch(self, url: str, sha256: str, dest: Path) -> Path:
        artifact_id = artifact_id_of(url)
        with self.sessions() as session:
            try:
                artifacts.get(session, artifact_id)
            except artifacts.ArtifactMissing as exc:
                raise ArtifactError(f"{url}: {exc}") from exc
            with AtomicWriter(dest, url) as out:
                try:
                    artifacts.copy_out(session, artifact_id, out.write)
                except ValueError as exc:  # a chunk missing or out of place
                    raise ArtifactTampered(f"{url}: {exc}; refusing it") from exc
                out.finish(sha256)
        return Path(dest)


def artifact_id_of(url: str) -> int:
    tail = url[len(PREFIX) :] if url.startswith(PREFIX) else ""
    if not tail.isdigit():
        raise ArtifactError(f"{url!r} is not a {PREFIX}<id> URL")
    return int(tail)

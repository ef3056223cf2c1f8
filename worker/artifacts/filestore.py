"""The file store: a local or shared folder; its URLs are plain absolute paths, as before."""

from __future__ import annotations

from pathlib import Path

from worker.artifacts.base import (
    ArtifactError,
    Stored,
    default_key,
    local_path_of,
    read_blocks,
    sha256_and_size,
    stream_to,
)


class FileStore:
    """Files under `root`; a registry row holds the stored copy's absolute path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def put(self, local_path: Path, key: str | None = None) -> Stored:
        local_path = Path(local_path).resolve()
        if key is None:
            key = default_key(local_path, sha256_and_size(local_path)[0])
        dest = (self.root / key).resolve()
        if not dest.is_relative_to(self.root):
            raise ArtifactError(f"artifact key {key!r} leaves the store {self.root}")
        if dest == local_path:  # saved in place (the store is the data dir): nothing to copy
            return Stored(str(dest), *sha256_and_size(dest))
        sha256, size = stream_to(read_blocks(local_path), dest)
        return Stored(str(dest), sha256, size)

    def fetch(self, url: str, sha256: str, dest: Path) -> Path:
        source = local_path_of(url)
        if source is None:
            raise ArtifactError(f"{url} is not a local path")
        try:
            stream_to(read_blocks(source), dest, sha256, source=str(source))
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {source} does not exist") from exc
        return Path(dest)

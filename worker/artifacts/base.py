"""The artifact store interface, and the one streaming copy that hashes what it writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20  # bytes held in memory at a time, by every store, both ways


class Stored(NamedTuple):
    """Where a put file now lives, and what it is."""

    url: str
    sha256: str
    size: int


class ArtifactError(RuntimeError):
    """An artifact that cannot be stored or fetched (missing, store unreachable)."""


class ArtifactTampered(ArtifactError):
    """Fetched bytes whose sha256 is not the one recorded: refused, nothing written."""


class ArtifactStore(Protocol):
    """put a local file in the store; fetch a URL it returned into a local file, verified."""

    def put(self, local_path: Path, key: str | None = None) -> Stored: ...

    def fetch(self, url: str, sha256: str, dest: Path) -> Path: ...


def default_key(local_path: Path, sha256: str) -> str:
    """A key for a file put without one: content-addressed, so it never overwrites another."""
    return f"sha256/{sha256}/{Path(local_path).name}"


def local_path_of(url: str) -> Path | None:
    """The path a plain path or `file://` URL names; None for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return Path(url)
    return None


def read_blocks(path: Path, size: int = CHUNK) -> Iterator[bytes]:
    """A file's bytes, `size` at a time."""
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(size), b"")


def sha256_and_size(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for block in read_blocks(path):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


class AtomicWriter:
    """A file written to a temp name and hashed as it goes; renamed onto `dest` only by
    `finish`, and only when its sha256 is the one expected. Anything else removes it."""

    def __init__(self, dest: Path, source: str = "") -> None:
        self.dest = Path(dest)
        self.source = source or str(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(
            dir=self.dest.parent, prefix=f".{self.dest.name}.", suffix=".part"
        )
        self._fh = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> None:
        self._digest.update(block)
        self._fh.write(block)
        self.size += len(block)

    def finish(self, expect: str | None = None) -> tuple[str, int]:
        """fsync, verify against `expect`, rename into place; (sha256, size)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        actual = self._digest.hexdigest()
        if expect is not None and actual != expect.lower():
            raise ArtifactTampered(
                f"{self.source}: sha256 {actual}, expected {expect}: the stored bytes were "
                "changed or corrupted; refusing them"
            )
        os.replace(self._tmp, self.dest)
        return actual, self.size

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
        Path(self._tmp).unlink(missing_ok=True)  # gone already once finished


def stream_to(
    blocks: Iterable[bytes], dest: Path, expect: str | None = None, source: str = ""
) -> tuple[str, int]:
    """Write `blocks` to `dest` atomically, hashing them; (sha256, size).

    With `expect`, bytes of another sha256 are refused before `dest` appears (the temp
    file is removed): `dest` only ever holds a complete, verified copy.
    """
    with AtomicWriter(dest, source) as out:
        for block in blocks:
            out.write(block)
        return out.finish(expect)

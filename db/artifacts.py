"""The postgres artifact store: a file as ordered bytea chunks, written and read one at a time.

Both ways go through binary COPY, one chunk row at a time: the database server never
builds the whole file in memory, and neither does the caller. The caller owns the
transaction; an upload is one transaction, so an interrupted one leaves nothing behind.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from db.tables import Artifact


class ArtifactMissing(LookupError):
    """No finished artifact of that id."""


def begin(session: Session, name: str) -> int:
    """A new, unfinished artifact; returns its id."""
    row = Artifact(name=name)
    session.add(row)
    session.flush()
    return row.id


def copy_in(session: Session, artifact_id: int, blocks: Iterable[bytes]) -> None:
    """Store `blocks` as chunks 0, 1, 2, ... of an unfinished artifact (binary COPY).

    Binary COPY sends the bytes as they are (an INSERT would send them as hex text): about
    three times the throughput. `blocks` is read one block at a time, as COPY asks for it.
    """
    _cursor(session).copy_expert(
        "COPY artifact_chunks (artifact_id, seq, data) FROM STDIN (FORMAT binary)",
        _CopyIn(artifact_id, blocks),
    )


def finish(session: Session, artifact_id: int, sha256: str, size: int) -> None:
    """Record the checksum and size of the bytes written: the artifact can now be read."""
    session.execute(
        update(Artifact).where(Artifact.id == artifact_id).values(sha256=sha256, size=size)
    )


def get(session: Session, artifact_id: int) -> Artifact:
    """A finished artifact's row; ArtifactMissing if unknown or unfinished."""
    row = session.get(Artifact, artifact_id)
    if row is None or row.sha256 is None:
        raise ArtifactMissing(f"no artifact {artifact_id} in the database")
    return row


def copy_out(session: Session, artifact_id: int, write: Callable[[bytes], None]) -> None:
    """Stream the artifact's bytes to `write`, chunk by chunk, in order (binary COPY).

    Binary COPY sends bytea as it is stored (a plain SELECT doubles it as hex): about
    twice the throughput. Rows come in primary-key order, one chunk in memory at a time.
    """
    sink = _CopyOut(write)
    query = (
        f"COPY (SELECT seq, data FROM artifact_chunks WHERE artifact_id = {int(artifact_id)} "
        "ORDER BY seq) TO STDOUT (FORMAT binary)"
    )
    _cursor(session).copy_expert(query, sink, size=COPY_READ)
    if not sink.ended:
        raise ValueError(f"artifact {artifact_id}: the COPY stream ended early")


COPY_READ = 1 << 20
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _cursor(session: Session) -> Any:
    """A DBAPI cursor on the session's connection, inside the caller's transaction."""
    return session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]


class _CopyIn:
    """A file-like source of binary COPY rows (artifact_id int8, seq int4, data bytea)."""

    def __init__(self, artifact_id: int, blocks: Iterable[bytes]) -> None:
        self._id = artifact_id
        self._blocks = iter(blocks)
        self._seq = -1  # -1: the header is next
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if self._seq < 0:
            self._seq = 0
            return _SIGNATURE + struct.pack("!ii", 0, 0)
        block = next(self._blocks, None)
        if block is None:
            self._done = True
            return struct.pack("!h", -1)
        row = struct.pack("!hiqiii", 3, 8, self._id, 4, self._seq, len(block))
        self._seq += 1
        return row + block


class _CopyOut:
    """A file-like sink parsing PostgreSQL's binary COPY format: rows of (int4 seq, bytea).

    Only a partial row is ever buffered; each complete row's bytes go to `write`, and the
    rows' seq must count 0, 1, 2, ... (a missing chunk is an error, not a shorter file).
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._buf = bytearray()
        self._header = True
        self._next = 0
        self.ended = False

    def write(self, data: bytes) -> int:
        self._buf += data
        while self._parse_one():
            pass
        return len(data)

    def _parse_one(self) -> bool:
        buf = self._buf
        if self._header:
            if len(buf) < 19:
                return False
            if bytes(buf[:11]) != _SIGNATURE:
                raise ValueError("not a binary COPY stream")
            ext = struct.unpack_from("!I", buf, 15)[0]
            if len(buf) < 19 + ext:
                return False
            del buf[: 19 + ext]
            self._header = False
            return True
        if len(buf) < 2:
            return False
        (fields,) = struct.unpack_from("!h", buf, 0)
        if fields == -1:  # the trailer
            self.ended = True
            del buf[:2]
            return False
        if len(buf) < 14:  # 2 + (4 + 4) for seq + 4 for the data's length
            return False
        seq_len, seq, size = struct.unpack_from("!iii", buf, 2)
        if fields != 2 or seq_len != 4:
            raise ValueError(f"unexpected COPY row shape ({fields} fields)")
        if len(buf) < 14 + size:
            return False
        if seq != self._next:
            raise ValueError(f"artifact chunk {self._next} is missing (got {seq})")
        self._write(bytes(memoryview(buf)[14 : 14 + size]))
        del buf[: 14 + size]
        self._next += 1
        return True

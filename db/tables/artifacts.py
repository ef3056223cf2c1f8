"""The postgres artifact store's tables: a file's row and its bytes as ordered chunks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.tables.common import now_column


class Artifact(Base):
    """A file in the postgres artifact store; its bytes are `artifact_chunks` rows.

    sha256 and size are set when the last chunk is written, in the same transaction.
    """

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = now_column()


class ArtifactChunk(Base):
    """One chunk of an artifact's bytes, in order of `seq` from 0."""

    __tablename__ = "artifact_chunks"
    __table_args__ = (PrimaryKeyConstraint("artifact_id", "seq"),)

    artifact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)

"""The crackq tables. `results` is a public interface: reporting tools read it directly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

LABELS = ("crack", "no_crack")
RESULT_STATUSES = ("queued", "succeeded", "failed")
RESULT_MODES = ("patch", "map")  # classified whole, or mapped tile by tile
MODEL_STATUSES = ("candidate", "promoted", "retired")


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Result(Base):
    """One classified (or failed) image reference, keyed by the client's request id."""

    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint(f"status IN {RESULT_STATUSES!r}", name="status"),
        CheckConstraint(f"label IS NULL OR label IN {LABELS!r}", name="label"),
        CheckConstraint(f"mode IS NULL OR mode IN {RESULT_MODES!r}", name="mode"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"
        ),
        Index("ix_results_created_at", "created_at"),
        Index("ix_results_finished_at", "finished_at"),
        Index("ix_results_status_created_at", "status", "created_at"),
        Index("ix_results_label_created_at", "label", "created_at"),
        Index("ix_results_model_version", "model_version"),
        Index("ix_results_batch_id", "batch_id"),
        Index("ix_results_asset_id_captured_at", "asset_id", "captured_at"),
        Index("ix_results_inspection_id", "inspection_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    batch_id: Mapped[str | None] = mapped_column(String(200))
    image_ref: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    crack_probability: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    decode_ms: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    # Crack maps (mode 'map'): how many tiles, how many called crack, the share of the
    # photo they cover and their connected regions; NULL for photos classified whole.
    mode: Mapped[str | None] = mapped_column(String(8))
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    crack_area_fraction: Mapped[float | None] = mapped_column(Float)
    crack_regions: Mapped[int | None] = mapped_column(Integer)
    # What the photo shows, from the producer (all optional): the asset, the inspection it
    # belongs to, when it was taken and a small free-form object (bounded by the message
    # schema). `metadata` is taken on declarative classes, hence the attribute's name.
    asset_id: Mapped[str | None] = mapped_column(String(200))
    inspection_id: Mapped[str | None] = mapped_column(String(200))
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    asset_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()


class CrackMapRow(Base):
    """The tile map of one photo: geometry and one crack probability per tile (0.5 = crack)."""

    __tablename__ = "crack_maps"

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), primary_key=True
    )
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    tile: Mapped[int] = mapped_column(Integer, nullable=False)
    stride: Mapped[int] = mapped_column(Integer, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    cols: Mapped[int] = mapped_column(Integer, nullable=False)
    # row-major, rows * cols values: probabilities[r * cols + c] is tile (r, c)
    probabilities: Mapped[list[float]] = mapped_column(ARRAY(REAL), nullable=False)
    model_version: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = _now()


class CrackRegionRow(Base):
    """Connected crack tiles of a map: bounding box in photo pixels, size, strongest tile."""

    __tablename__ = "crack_regions"
    __table_args__ = (Index("ix_crack_regions_request_id", "request_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    region: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 = the strongest
    x0: Mapped[int] = mapped_column(Integer, nullable=False)
    y0: Mapped[int] = mapped_column(Integer, nullable=False)
    x1: Mapped[int] = mapped_column(Integer, nullable=False)
    y1: Mapped[int] = mapped_column(Integer, nullable=False)
    tiles: Mapped[int] = mapped_column(Integer, nullable=False)
    max_probability: Mapped[float] = mapped_column(Float, nullable=False)


class ModelVersion(Base):
    """A registered model: where its checkpoint lies, what it scored, and its status."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"status IN {MODEL_STATUSES!r}", name="status"),
        Index(
            "uq_model_versions_one_promoted",
            "status",
            unique=True,
            postgresql_where=text("status = 'promoted'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    parent_version: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="candidate")
    checkpoint_uri: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    architecture: Mapped[str] = mapped_column(String(64), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    data_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[dt.datetime] = _now()
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the first error an inference worker met loading it (see ModelEvent for each worker's)
    load_error: Mapped[str | None] = mapped_column(Text)


RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class TrainingRun(Base):
    """One fine-tuning run: its resolved config, live progress and outcome."""

    __tablename__ = "training_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index("ix_training_runs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    sources: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    data_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    model_version: Mapped[str | None] = mapped_column(String(100))
    promoted: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    artifacts_dir: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the Celery node running it and its last sign of life (a run without one is swept)
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    retry_of: Mapped[str | None] = mapped_column(String(64))
    # the run's files in the artifact store: name -> {"url", "sha256", "size"}
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class Label(Base):
    """An operator's ground-truth label for a stored result, used as training data."""

    __tablename__ = "labels"
    __table_args__ = (CheckConstraint(f"label IN {LABELS!r}", name="label"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(200),
        ForeignKey("results.request_id", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    )
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    labelled_by: Mapped[str] = mapped_column(String(200), nullable=False)
    labelled_at: Mapped[dt.datetime] = _now()


class DeadLetter(Base):
    """A message refused before it could become a result row, kept for operators to replay."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[str | None] = mapped_column(String(255))
    task_name: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    received_at: Mapped[dt.datetime] = _now()
    replayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# shadow_on / shadow_off: a version started or stopped scoring live photos in shadow
MODEL_EVENT_ACTIONS = ("promote", "rollback", "load_failed", "shadow_on", "shadow_off")


class ModelEvent(Base):
    """One registry event: a promotion, a rollback, or a worker that could not load a version."""

    __tablename__ = "model_events"
    __table_args__ = (
        CheckConstraint(f"action IN {MODEL_EVENT_ACTIONS!r}", name="action"),
        Index("ix_model_events_version", "version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    previous_version: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = _now()


class Artifact(Base):
    """A file in the postgres artifact store; its bytes are `artifact_chunks` rows.

    sha256 and size are set when the last chunk is written, in the same transaction.
    """

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = _now()


class ArtifactChunk(Base):
    """One chunk of an artifact's bytes, in order of `seq` from 0."""

    __tablename__ = "artifact_chunks"
    __table_args__ = (PrimaryKeyConstraint("artifact_id", "seq"),)

    artifact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ShadowSetting(Base):
    """The version inference workers also score live photos with, and the share they score.

    At most one row (id 1): one shadow version at a time. Workers poll it with the
    registry, so a restarted worker shadows again (worker.shadow).
    """

    __tablename__ = "model_shadow"
    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        CheckConstraint("fraction > 0 AND fraction <= 1", name="fraction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    fraction: Mapped[float] = mapped_column(Float, nullable=False)
    started_by: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[dt.datetime] = _now()


class ShadowScore(Base):
    """A shadow version's answer for one live photo; the photo's `results` row is untouched.

    label and crack_probability read as on results (crack exactly when >= 0.5). A mapped
    photo also keeps how many tiles the shadow mapped and called crack.
    """

    __tablename__ = "shadow_scores"
    __table_args__ = (
        PrimaryKeyConstraint("request_id", "version"),
        CheckConstraint(f"label IN {LABELS!r}", name="label"),
        CheckConstraint(f"mode IN {RESULT_MODES!r}", name="mode"),
        Index("ix_shadow_scores_version", "version"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    crack_probability: Mapped[float] = mapped_column(Float, nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = _now()


# Why a photo entered the review queue (README "Review queue"; db.reviewrules.enter).
REVIEW_REASONS = ("uncertain", "borderline_map", "asset_changed", "sample")
REVIEW_STATES = ("open", "labelled", "skipped")


class ReviewEntry(Base):
    """A stored photo picked for a person to look at, and what became of it.

    One entry per photo, with the first rule that picked it. A reviewer's answer is a
    `labels` row (who, when) and closes the entry as `labelled` with the same answer,
    person and time; `skipped` closes it without a label.
    """

    __tablename__ = "review_queue"
    __table_args__ = (
        CheckConstraint(f"reason IN {REVIEW_REASONS!r}", name="reason"),
        CheckConstraint(f"state IN {REVIEW_STATES!r}", name="state"),
        CheckConstraint(f"answer IS NULL OR answer IN {LABELS!r}", name="answer"),
        CheckConstraint(
            "(state = 'open') = (decided_at IS NULL) AND (state = 'labelled') = (answer IS NOT NULL)",
            name="decided",
        ),
        Index("ix_review_queue_state_entered_at", "state", "entered_at"),
        Index("ix_review_queue_reason_entered_at", "reason", "entered_at"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    answer: Mapped[str | None] = mapped_column(String(16))
    entered_at: Mapped[dt.datetime] = _now()
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


SCORE_SOURCES = ("live", "rescore")  # scored as the photo arrived, or by `crackq rescore`
RESCORE_STATUSES = ("running", "done")


class ResultScore(Base):
    """One model version's answer for one photo; `results` holds the latest of them.

    Written with the row it scored, in one transaction: live, and by every re-score
    (crackq rescore). The first answer of a (request id, version) pair is kept.
    """

    __tablename__ = "result_scores"
    __table_args__ = (
        PrimaryKeyConstraint("request_id", "model_version"),
        CheckConstraint(f"label IN {LABELS!r}", name="label"),
        CheckConstraint(f"source IN {SCORE_SOURCES!r}", name="source"),
        Index("ix_result_scores_model_version", "model_version"),
    )

    request_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("results.request_id", ondelete="CASCADE"), nullable=False
    )
    # not a registry key: a live row may be answered by an explicit checkpoint's version
    model_version: Mapped[str] = mapped_column(String(100), nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    crack_probability: Mapped[float | None] = mapped_column(Float)
    mode: Mapped[str | None] = mapped_column(String(8))
    tiles: Mapped[int | None] = mapped_column(Integer)
    crack_tiles: Mapped[int | None] = mapped_column(Integer)
    crack_area_fraction: Mapped[float | None] = mapped_column(Float)
    crack_regions: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8), nullable=False)
    scored_at: Mapped[dt.datetime] = _now()


class RescoreJob(Base):
    """One `crackq rescore`: its rows (range, asset), the version, and how far it has sent.

    `last_id` is the cursor (results.id of the last row sent); the same command run again
    finds its running job by `key` and goes on from there.
    """

    __tablename__ = "rescore_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {RESCORE_STATUSES!r}", name="status"),
        Index(
            "uq_rescore_jobs_running_key",
            "key",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(
        String(100), ForeignKey("model_versions.version", ondelete="CASCADE"), nullable=False
    )
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    asset_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    total: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    started_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

"""Settings of the artifact store (checkpoints, run reports) and the model cache."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class ArtifactSettings(BaseModel):
    """Artifacts: checkpoints and run reports."""

    artifact_store: str = Field(
        "postgres",
        description="Where training runs store checkpoints and reports for every worker: "
        "postgres (in the database, chunked; nothing to set up), s3://bucket/prefix "
        "(CRACKQ_S3_ENDPOINT_URL, AWS_* keys) or file:///dir (a local or shared folder).",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where workers keep checkpoints fetched from the artifact store; "
        "empty = CRACKQ_DATA_DIR/cache/models.",
    )
    model_cache_mb: int = Field(
        2048,
        ge=0,
        description="Size limit of the model cache: least recently used versions are "
        "evicted past it, never the one being served.",
    )

    @field_validator("artifact_store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("s3://") and not value[len("s3://") :].strip("/"):
            raise ValueError("CRACKQ_ARTIFACT_STORE=s3:// needs a bucket: s3://bucket/prefix")
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(
                f"CRACKQ_ARTIFACT_STORE={value!r}: expected postgres, s3://bucket/prefix, "
                "file:///dir or a folder"
            )
        return value or "postgres"

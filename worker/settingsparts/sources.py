"""Settings of image references: where photos may come from and what is decoded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

# models.formats.PHOTO_FORMAT_NAMES as a type (a test keeps the two equal)
ImageFormat = Literal["JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF"]
DEFAULT_IMAGE_FORMATS: tuple[ImageFormat, ...] = ("JPEG", "MPO", "PNG", "WEBP", "TIFF")


class SourceSettings(BaseModel):
    """Image references: allowed roots, size limits, formats and fetching."""

    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Local folders images may be read from (JSON list or comma-separated); "
        "empty = local paths refused.",
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest image file.")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Largest width x height.")
    image_formats: Annotated[list[ImageFormat], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_FORMATS),
        min_length=1,
        description="Image formats decoded (JSON list or comma-separated; JPEG includes "
        "MPO): JPEG, MPO, PNG, WEBP, TIFF; BMP and GIF only when listed.",
    )
    http_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Connect/read timeout for http(s); a whole fetch, redirects and DNS "
        "included, ends within 3x this.",
    )
    allow_private_urls: bool = Field(
        False, description="Allow http(s) URLs resolving to private/loopback addresses."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph); AWS_* variables for keys."
    )

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [p for p in (s.strip() for s in value.split(",")) if p]
        return value

    @field_validator("image_formats", mode="before")
    @classmethod
    def _split_formats(cls, value: object) -> object:
        value = cls._split_roots(value)
        if isinstance(value, list):
            return [v.strip().upper() if isinstance(v, str) else v for v in value]
        return value

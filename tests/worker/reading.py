"""Reading references in tests: limits to read with, and the code a refusal carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ErrorCode, ImageError
from worker.sources import SourceLimits, read_bytes

MB = 1024 * 1024


def limits(*roots: Path, max_bytes: int = MB, **kw: object) -> SourceLimits:
    return SourceLimits(allowed_roots=roots, max_bytes=max_bytes, http_timeout_s=2.0, **kw)  # type: ignore[arg-type]


def code_of(ref: str, lim: SourceLimits) -> ErrorCode:
    with pytest.raises(ImageError) as info:
        read_bytes(ref, lim)
    assert ref in info.value.message, "the message names the reference"
    return info.value.code

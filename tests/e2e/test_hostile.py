"""Every hostile or odd image reference ends as its own row in one real worker, which goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hostile.cases import SUCCEEDED
from harness.hostile.run import format_table, hostile_inputs
from worker.errors import ErrorCode

pytestmark = pytest.mark.usefixtures("database_url", "redis_client")

# the codes a hostile reference can earn; each must be exercised at least once
REQUIRED = {
    ErrorCode.NOT_AN_IMAGE,
    ErrorCode.TRUNCATED_IMAGE,
    ErrorCode.EMPTY_FILE,
    ErrorCode.IMAGE_TOO_SMALL,
    ErrorCode.TOO_MANY_PIXELS,
    ErrorCode.TOO_MANY_BYTES,
    ErrorCode.PATH_NOT_ALLOWED,
    ErrorCode.NOT_FOUND,
    ErrorCode.ADDRESS_NOT_ALLOWED,
    ErrorCode.FETCH_TIMEOUT,
    ErrorCode.UNSUPPORTED_SCHEME,
    ErrorCode.INVALID_REQUEST,
}


def test_hostile_inputs_fail_with_their_codes_and_the_worker_still_serves(tmp_path: Path) -> None:
    rows = hostile_inputs(tmp_path / "hostile", timeout_s=90)
    table = format_table(rows)
    print(f"\n{table}")
    assert all(r["ok"] for r in rows), f"\n{table}\n\nworker log: {tmp_path / 'hostile'}"
    expected = {r["expected"] for r in rows}
    assert {c.value for c in REQUIRED} <= expected, "a required case went missing"
    assert ErrorCode.INTERNAL_ERROR.value not in {r["got"] for r in rows}
    odd_but_valid = [r for r in rows if r["expected"] == SUCCEEDED]
    assert len(odd_but_valid) >= 6 + 5  # CMYK, grey, 16-bit, palette, RGBA, EXIF + the good ones
    assert rows[-2]["input"].startswith("worker still running")

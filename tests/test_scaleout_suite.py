"""The scaleout benchmark's pieces that need no workers: its registration and its log reading."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from benchmarks.run import SUITES, main
from benchmarks.store_speed import logged_fetches


def test_the_suite_is_registered_and_tells_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert SUITES["scaleout"][0] == "benchmarks.scaleout"
    with pytest.raises(SystemExit) as done:
        main(["--suite", "scaleout", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--total TOTAL" in out and "--poll-s" in out


def test_downloads_are_read_from_the_model_cache_own_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.modelcache import ModelCache

    blob = b"x" * 3_000_000
    sha = hashlib.sha256(blob).hexdigest()

    class OneObject:
        def fetch(self, url: str, sha256: str, dest: Path) -> Path:
            dest.write_bytes(blob)
            return dest

    cache = ModelCache(tmp_path, 1 << 30, OneObject())  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="worker.modelcache"):
        cache.path_for("s3://bucket/models/v1.pt", sha)
    (fetched,) = logged_fetches(caplog.text)
    assert fetched["url"] == "s3://bucket/models/v1.pt"
    assert fetched["mb"] == 3.0 and fetched["seconds"] >= 0

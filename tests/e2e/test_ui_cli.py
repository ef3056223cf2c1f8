"""`crackq ui` from the command line: the loopback guard, password hashing, and the console benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.procs import ROOT
from tests.conftest import REDIS_DB


def test_without_accounts_only_loopback_is_served(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "ui", "--address", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "without a login" in out.stderr, out.stderr
    hashed = subprocess.run(
        [sys.executable, "-m", "worker.cli", "ui", "--hash-password"],
        input="s3cret\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert hashed.returncode == 0 and hashed.stdout.startswith("pbkdf2_sha256$")


def test_the_console_benchmark_prints_each_pages_time() -> None:
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", "console", "--rows", "3000"]
    argv += ["--assets", "50", "--open", "8", "--repeat", "3", "--side", "512"]
    env = dict(os.environ, CRACKQ_BENCH_REDIS_DB=str(REDIS_DB))
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = json.loads(out.stdout.splitlines()[-1])
    assert line["bench"] == "console" and line["stored_rows"] == 3000
    pages = {"review", "assets", "asset", "models", "photo_cold", "photo_cached", "thumb_cold"}
    assert set(line["pages"]) == pages
    assert all(0 < p["p50_ms"] <= p["p95_ms"] for p in line["pages"].values())

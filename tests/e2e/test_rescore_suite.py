"""The rescore benchmark runs end to end, small: every phase, a full re-score, a summary."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_rescore_benchmark_measures_live_latency_with_and_without() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--suite", "rescore", "--rows", "40",
         "--trickle-s", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {x["bench"]: x for x in map(json.loads, out.stdout.strip().splitlines())}
    assert list(lines) == ["live_alone", "live_during_rescore", "live_after", "rescore_summary"]
    assert not any(lines[p]["timed_out"] for p in ("live_alone", "live_during_rescore"))
    assert lines["live_during_rescore"]["rescore"]["rescored"] == 40
    assert lines["live_during_rescore"]["rescore"]["exit_code"] == 0
    summary = lines["rescore_summary"]
    assert summary["target"] == 2.0 and summary["cpu"] and summary["ratio"] is not None

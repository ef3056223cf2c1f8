"""The README's main job, `crackq demo`, on embedded Redis and PostgreSQL started from wheels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil


def test_demo_runs_the_whole_loop_on_embedded_servers(tmp_path: Path) -> None:
    env = {**os.environ, "CRACKQ_EMBEDDED": "always", "CRACKQ_DATA_DIR": str(tmp_path / "state")}
    for key in ("CRACKQ_DATABASE_URL", "CRACKQ_BROKER_URL"):
        env.pop(key)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "demo",
            "--train-images",
            "96",
            "--epochs",
            "1",
            "--classify",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert re.search(r"embedded (Redis|PostgreSQL)", out.stderr)
    assert "switched to" in out.stderr
    assert re.search(r"classified 40 held-out photos .* failed: 0", out.stdout)
    assert "confusion matrix" in out.stdout and re.search(r"accuracy \d\.\d{4}", out.stdout)
    assert re.search(r"crack map of mosaic\.jpg: succeeded \w+, \d+/\d+ crack tiles", out.stdout)
    # one asset inspected twice; what the view says depends on how well the model learned
    assert re.search(r"asset demo-wall: 2 inspections, latest (no_)?crack after", out.stdout)
    assert re.search(r"review queue: \d+ photos open", out.stdout)
    runs = list((tmp_path / "state" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "training.png").is_file()
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == [], "embedded servers or workers were left running"

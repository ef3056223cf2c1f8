"""A training run puts its checkpoint and reports in the artifact store; any machine reads them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from db import registry, runs
from harness.procs import ROOT
from tests.worker.finetuning import run
from worker.settings import Settings
from worker.trainingdata import DataSpec

pytestmark = pytest.mark.usefixtures("clean_tables")
REPORTS = ("metrics.json", "training.png", "predictions.png")


def report_cli(run_id: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "finetune", "report", run_id, "-o", str(out), *extra],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_runs_store_checkpoints_and_reports_in_postgres_for_other_machines(
    sessions, tmp_path: Path, synthetic_root: Path
) -> None:
    spec = DataSpec(folders=[str(synthetic_root)])
    first_dir = tmp_path / "trainer-1"
    outcome, first, _ = run(
        sessions, tmp_path, spec, settings=Settings(data_dir=first_dir, int8="off")
    )
    assert outcome["status"] == "succeeded", first.message
    with sessions() as s:
        version = registry.get(s, first.model_version)
        uri, sha = version.checkpoint_uri, version.sha256
    assert uri.startswith("pg://artifact/") and first.artifacts["checkpoint"]["url"] == uri
    assert set(first.artifacts) == {"checkpoint", *REPORTS}
    originals = {n: (Path(first.artifacts_dir) / n).read_bytes() for n in REPORTS}
    for folder in first_dir.iterdir():  # that machine's files are gone: only the database has them
        shutil.rmtree(folder)

    # A training worker elsewhere, with an empty data dir, trains from the promoted parent.
    second_dir = tmp_path / "trainer-2"
    outcome, second, _ = run(
        sessions, tmp_path, spec, settings=Settings(data_dir=second_dir, int8="off")
    )
    assert outcome["status"] == "succeeded", second.message
    cached = second_dir / "cache" / "models" / f"{sha}.pt"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    assert second.metrics["baseline"]["version"] == first.model_version

    out = tmp_path / "report"
    done = report_cli(first.run_id, out, "--checkpoint")
    assert done.returncode == 0, done.stderr
    for name, data in originals.items():
        assert (out / name).read_bytes() == data
    fetched = out / f"{first.model_version}.pt"
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in out.iterdir()) == sorted([*REPORTS, fetched.name])


def test_a_file_store_keeps_plain_paths_in_the_registry(
    sessions, tmp_path: Path, synthetic_root: Path
) -> None:
    store = tmp_path / "shared-store"
    settings = Settings(data_dir=tmp_path / "state", int8="off", artifact_store=f"file://{store}")
    outcome, row, _ = run(
        sessions, tmp_path, DataSpec(folders=[str(synthetic_root)]), settings=settings
    )
    assert outcome["status"] == "succeeded", row.message
    with sessions() as s:
        uri = registry.get(s, row.model_version).checkpoint_uri
    assert uri == str(store / "models" / f"{row.model_version}.pt") and Path(uri).is_file()
    assert (store / "runs" / row.run_id / "metrics.json").is_file()


def test_report_of_a_run_from_before_the_store_copies_its_local_folder(
    sessions, tmp_path: Path
) -> None:
    folder = tmp_path / "runs" / "old"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")
    with sessions() as s, s.begin():
        runs.create_run(s, "old-run", {}, {}).artifacts_dir = str(folder)
    done = report_cli("old-run", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "metrics.json").read_text() == "{}"
    shutil.rmtree(folder)
    done = report_cli("old-run", tmp_path / "out2")
    assert done.returncode == 1 and "not on this machine" in done.stderr

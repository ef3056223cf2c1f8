"""Settings parsing and the worker/flower command lines built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.launch import find_allocator, flower_launch, worker_launch
from worker.settings import Settings


def test_allowed_roots_accept_commas_and_json(monkeypatch) -> None:
    monkeypatch.setenv("CRACKQ_ALLOWED_ROOTS", "/data/a, /data/b")
    assert Settings().allowed_roots == [Path("/data/a"), Path("/data/b")]
    monkeypatch.setenv("CRACKQ_ALLOWED_ROOTS", '["/x"]')
    assert Settings().allowed_roots == [Path("/x")]


def test_database_url_from_secret_file_and_never_in_repr(tmp_path, monkeypatch) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql+psycopg2://app:hunter2@db/crackq\n")
    monkeypatch.setenv("CRACKQ_DATABASE_URL_FILE", str(secret))
    s = Settings()
    assert s.database() == "postgresql+psycopg2://app:hunter2@db/crackq"
    assert "hunter2" not in repr(s)


def test_inference_worker_uses_threads_pool_and_prefetches_batches() -> None:
    s = Settings(batch_size=32, allocator="system")
    launch = worker_launch(s, "inference", hostname="w@h")
    argv = " ".join(launch.argv)
    assert "-Q inference" in argv and "-P threads" in argv and "-c 2" in argv and "-E" in argv
    assert "--prefetch-multiplier=64" in argv
    assert "LD_PRELOAD" not in launch.env


def test_training_worker_runs_one_run_at_a_time() -> None:
    argv = " ".join(worker_launch(Settings(), "training").argv)
    assert "-Q training" in argv and "-P threads" in argv and "-c 1" in argv


@pytest.mark.parametrize("queue", ["inference", "training"])
def test_both_workers_preload_the_chosen_allocator(queue: str) -> None:
    lib = find_allocator("auto")
    if lib is None:
        pytest.skip("neither tcmalloc nor jemalloc is installed here")
    launch = worker_launch(Settings(allocator="auto", backend="torch"), queue)
    assert launch.env["LD_PRELOAD"].endswith(lib)


def test_openvino_inference_worker_runs_without_tcmalloc() -> None:
    pytest.importorskip("openvino")
    settings = Settings(allocator="auto", backend="openvino")
    assert "LD_PRELOAD" not in worker_launch(settings, "inference").env
    # A GPU worker serves torch, and the training worker always does: they keep it.
    if find_allocator("auto"):
        assert "LD_PRELOAD" in worker_launch(settings, "inference", on_gpu=True).env
        assert "LD_PRELOAD" in worker_launch(settings, "training").env


def test_unknown_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        worker_launch(Settings(), "celery")


def test_flower_gets_basic_auth_through_the_environment() -> None:
    launch = flower_launch(Settings(flower_basic_auth="ops:pw"))
    assert launch.env["FLOWER_BASIC_AUTH"] == "ops:pw"
    assert "ops:pw" not in " ".join(launch.argv)
    assert "FLOWER_UNAUTHENTICATED_API" not in launch.env


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    from harness.procs import ROOT
    from worker.settings import Settings

    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        var = f"CRACKQ_{name.upper()}"
        assert f"| `{var}` |" in readme, f"{var} missing from the README's settings table"
        assert f"{var}=" in example, f"{var} missing from .env.example"


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_flower_without_auth_is_refused_off_loopback(address: str) -> None:
    with pytest.raises(ValueError, match="CRACKQ_FLOWER_BASIC_AUTH"):
        flower_launch(Settings(flower_address=address))
    assert flower_launch(Settings(flower_address=address, flower_basic_auth="ops:pw"))


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_flower_without_auth_may_listen_on_loopback(address: str) -> None:
    assert f"--address={address}" in flower_launch(Settings(flower_address=address)).argv

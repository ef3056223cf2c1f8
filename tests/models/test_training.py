"""fine_tune end to end on synthetic photos: progress, plots, cancel, checkpoint, learning."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from harness import images
from models.checkpoints import expected_sha256, load_checkpoint, model_from_checkpoint
from models.datasets import DatasetError, Sample
from models.evaluation import evaluate, metrics, to_input
from models.imagedata import Batch
from models.loop import make_loader, precise_bn
from models.network import build_model, imagenet_available, initial_model
from models.numerics import resolve_numerics
from models.progress import TrainingCancelled
from models.recipe import Recipe
from models.synthetic import make_synthetic_dataset
from models.training import fine_tune, save_trained
from models.transforms import EvalPreset

TINY = Recipe(batch_size=16, epochs=1, image_size=64, num_workers=1, precision="auto")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    with Image.open(path) as img:
        img.verify()


def _no_worker_processes_left() -> bool:
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not multiprocessing.active_children()


@pytest.mark.slow
def test_tiny_run_reports_progress_writes_plots_and_counts_bad_images(
    synthetic: dict[str, list[Sample]], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(images.truncated_jpeg())
    train = [*synthetic["train"], (str(corrupt), 1)]
    events: list[dict[str, Any]] = []
    started = time.perf_counter()
    result = fine_tune(
        train, synthetic["val"], TINY, out_dir=tmp_path / "run", progress=events.append,
        progress_every=1,
    )  # fmt: skip
    assert time.perf_counter() - started < 60
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]  # 65 images, batch 16, last dropped
    assert {"epoch", "epochs", "step", "steps", "loss", "images_per_s", "lr", "eta_s"} <= set(
        steps[0]
    )
    assert steps[-1]["eta_s"] == 0 and steps[0]["eta_s"] > 0
    assert steps[0]["lr"] == pytest.approx(TINY.lr)  # cosine starts at the base rate
    epoch_events = [e for e in events if e["event"] == "epoch"]
    assert len(epoch_events) == 1 and 0.0 <= epoch_events[0]["val"]["accuracy"] <= 1.0
    _assert_png(result.chart_path)
    _assert_png(result.grid_path)
    assert result.chart_path.parent == tmp_path / "run"
    assert [s["path"] for s in result.skipped] == [str(corrupt)]
    assert len(result.history) == 1 and result.best_epoch == 1
    assert result.metrics["n"] == len(synthetic["val"])
    assert result.images_per_s > 0 and result.wall_s > 0
    if not imagenet_available():
        assert result.init == "random" and "not cached" in result.init_note
    assert not result.model.training
    assert _no_worker_processes_left()


@pytest.mark.slow
def test_checkpoint_of_a_run_round_trips(synthetic, tmp_path: Path) -> None:
    recipe = Recipe(batch_size=32, epochs=1, image_size=32, num_workers=0, init="random")
    result = fine_tune(synthetic["train"], synthetic["val"], recipe, out_dir=tmp_path)
    path = tmp_path / "model.pt"
    sha = save_trained(result, path, version="v-test")
    payload = load_checkpoint(path, expected_sha256(path))
    assert payload["version"] == "v-test" and sha == expected_sha256(path)
    assert Recipe.from_dict(payload["recipe"]) == recipe
    assert payload["metrics"]["confusion"] == result.metrics["confusion"]
    assert payload["history"][0]["val"]["auc"] == result.history[0]["val"]["auc"]
    restored = model_from_checkpoint(payload)
    for key, value in result.model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)


@pytest.mark.slow
def test_should_stop_cancels_cleanly(synthetic, tmp_path: Path) -> None:
    calls = 0

    def stop_on_third_check() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    with pytest.raises(TrainingCancelled) as info:
        fine_tune(
            synthetic["train"], synthetic["val"], TINY, out_dir=tmp_path,
            should_stop=stop_on_third_check,
        )  # fmt: skip
    assert info.value.reason == "cancelled" and calls == 3
    assert not (tmp_path / "training.png").exists()
    assert _no_worker_processes_left()


def test_time_limit_cancels(synthetic, tmp_path: Path) -> None:
    recipe = Recipe(batch_size=16, epochs=3, image_size=32, num_workers=0, time_limit_s=1e-3)
    with pytest.raises(TrainingCancelled, match="time limit"):
        fine_tune(synthetic["train"], synthetic["val"], recipe, out_dir=tmp_path)


def test_training_set_needs_both_classes(synthetic, tmp_path: Path) -> None:
    cracks_only = [s for s in synthetic["train"] if s[1] == 1]
    with pytest.raises(DatasetError, match="both classes"):
        fine_tune(cracks_only, synthetic["val"], TINY, out_dir=tmp_path)


def test_initial_model_falls_back_without_imagenet(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: nothing to load
    promoted = build_model().state_dict()
    model, used, note = initial_model("auto", promoted)
    assert used == "checkpoint" and "not cached" in note
    assert torch.equal(model.state_dict()["fc.weight"], promoted["fc.weight"])
    _, used, note = initial_model("auto", None)
    assert used == "random" and "random weights" in note
    assert initial_model("random", promoted)[1:] == ("random", "")
    with pytest.raises(ValueError, match="init_state_dict"):
        initial_model("checkpoint", None)


def test_bf16_channels_last_forward_matches_fp32() -> None:
    # Inference parity; training parity is the slow learning test run at both precisions
    # (a random-init ResNet's train-mode gradients are too ill-conditioned to compare).
    torch.manual_seed(0)
    model = build_model().eval()
    model.fc = torch.nn.Identity()  # compare the 2048-d features the head sees
    x = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        reference = model(x)
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fast(x.contiguous(memory_format=torch.channels_last)).float()
    cosine = torch.nn.functional.cosine_similarity(reference, low, dim=1)
    assert cosine.min() > 0.995
    assert (reference - low).norm() / reference.norm() < 0.1


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "channels_last"), [("bf16", True), ("fp32", False)])
def test_a_short_run_learns_synthetic_cracks(
    tmp_path: Path, precision: str, channels_last: bool
) -> None:
    train = make_synthetic_dataset(tmp_path / "train", 150, size=96, seed=10)
    val = make_synthetic_dataset(tmp_path / "val", 40, size=96, seed=11)
    held_out = make_synthetic_dataset(tmp_path / "test", 60, size=96, seed=12)
    recipe = Recipe(
        batch_size=16, epochs=6, image_size=64, num_workers=1, init="random",
        precision=precision, channels_last=channels_last,
    )  # fmt: skip
    result = fine_tune(train, val, recipe, out_dir=tmp_path / "run")
    loader = make_loader(held_out, EvalPreset(64), 64, False, Recipe(num_workers=0), False)
    scored = evaluate(result.model, loader, resolve_numerics("cpu", "fp32", True))
    held = metrics(scored.labels, scored.p_crack)
    assert held["accuracy"] > 0.8, held
    assert held["auc"] > 0.9, held


def _loader_workers(queue) -> None:  # runs in a daemonic child process
    loader = make_loader([("x.jpg", 0)], EvalPreset(32), 1, False, Recipe(num_workers=2), False)
    queue.put(loader.num_workers)


def test_make_loader_decodes_in_process_inside_a_daemon() -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_loader_workers, args=(queue,), daemon=True)
    child.start()
    try:
        assert queue.get(timeout=60) == 0
    finally:
        child.join(60)


def _batch(images: torch.Tensor) -> Batch:
    n = len(images)
    return Batch(images, torch.zeros(n, dtype=torch.long), torch.arange(n), [])


def test_precise_bn_replaces_stale_running_statistics_with_the_data_average() -> None:
    numerics = resolve_numerics("cpu", "fp32", channels_last=False)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    bn = model[0]
    bn.running_mean.fill_(5.0)  # stale: nothing like the data below
    generator = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8, generator=generator)]
    data.append(torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8, generator=generator))
    model.eval()

    used = precise_bn(model, [_batch(x) for x in data], numerics)

    inputs = torch.cat([to_input(x, numerics) for x in data])
    assert used == 6 and not model.training and bn.momentum == 0.1
    # The plain average of per-batch means, not the running average from 5.0.
    expected = torch.stack([to_input(x, numerics).mean((0, 2, 3)) for x in data]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert abs(bn.running_mean - inputs.mean((0, 2, 3))).max() < 0.2


def test_precise_bn_without_images_keeps_the_old_statistics() -> None:
    numerics = resolve_numerics("cpu", "fp32", channels_last=False)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    model[0].running_mean.fill_(5.0)
    empty = _batch(torch.zeros((0, 8, 8, 3), dtype=torch.uint8))
    assert precise_bn(model, [empty], numerics) == 0
    assert torch.equal(model[0].running_mean, torch.full((3,), 5.0))

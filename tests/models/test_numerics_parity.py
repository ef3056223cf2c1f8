"""The fast inference numerics (bf16 + channels_last) agree with fp32 NCHW on real photos."""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models.classifier import CRACK_INDEX, Classifier, resolve_numerics
from models.datasets import Sample, load_rgb
from models.recipe import Recipe
from models.training import fine_tune
from models.transforms import EvalPreset, stack
from tests.conftest import real_data_or_skip

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SIZE = 224
TRAIN_PER_CLASS = 48  # 6 steps of 16: ~300 photos took well over 60 s on 2 shared cores
# Random init, bf16 autocast where native (the real recipe's numerics), no loader processes.
RECIPE = Recipe(
    batch_size=16, epochs=1, image_size=SIZE, init="random", num_workers=0, lr=1e-3, seed=0
)


def _photos(data: Path, first: int, count: int) -> list[Sample]:
    """`count` photos per class from rank `first` in file-number order (Positive = 1)."""
    return [
        (str(path), label)
        for label, folder in ((0, "Negative"), (1, "Positive"))
        for path in sorted((data / folder).glob("*.jpg"))[first : first + count]
    ]


def _pixels(samples: list[Sample]) -> list[np.ndarray]:
    preset = EvalPreset(SIZE)
    return [preset(load_rgb(path, SIZE)) for path, _ in samples]


def _p_crack(clf: Classifier, pixels: list[np.ndarray]) -> np.ndarray:
    probs = [clf.predict(stack(pixels[i : i + 32])) for i in range(0, len(pixels), 32)]
    return torch.cat(probs)[:, CRACK_INDEX].double().numpy()


@dataclass(frozen=True)
class Reference:
    """A quickly trained model, 200 held-out photos as pixels, and its fp32 NCHW answers."""

    model: torch.nn.Module
    pixels: list[np.ndarray]
    p32: np.ndarray


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    data = real_data_or_skip()
    # Held-out photos come from file numbers far from the training ones: the crack patches
    # were cut from few photos, and neighbouring numbers are near-duplicates.
    train, val = _photos(data, 0, TRAIN_PER_CLASS), _photos(data, 3000, 8)
    held_out = _photos(data, 6000, 100)
    started = time.perf_counter()
    result = fine_tune(train, val, RECIPE, out_dir=tmp_path_factory.mktemp("fit"), device="cpu")
    assert result.init == "random" and result.train_images == len(train)
    # fine_tune recomputed BatchNorm statistics over the training photos (precise BN).
    model = result.model.eval()
    pixels = _pixels(held_out)
    fp32 = Classifier(copy.deepcopy(model), resolve_numerics("cpu", "fp32", False), "fp32", SIZE)
    p32 = _p_crack(fp32, pixels)
    accuracy = float(np.mean((p32 >= 0.5) == np.array([label for _, label in held_out])))
    print(f"\nparity: trained on {len(train)} photos in {time.perf_counter() - started:.0f} s; "
          f"fp32 accuracy {accuracy:.3f}")  # fmt: skip
    # The comparison only means something for a model that learned the task.
    assert accuracy >= 0.7, f"the quick model did not learn (accuracy {accuracy:.3f})"
    return Reference(model, pixels, p32)


def _needs_openvino() -> None:
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'crackq[openvino]')")


def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here; this numerics path runs on GPUs only")


def _torch(device: str, precision: str, **switches: str) -> Callable[[torch.nn.Module], Classifier]:
    numerics = resolve_numerics(device, precision, channels_last=True, **switches)
    return lambda model: Classifier(model, numerics, numerics.name, SIZE)


def _openvino(model: torch.nn.Module) -> Classifier:
    from models.openvino_backend import OpenVINOClassifier

    return OpenVINOClassifier(model, resolve_numerics("cpu", "bf16", True), "ov", SIZE)


# name -> (precondition, classifier factory). Every fast path a worker can serve from.
CONFIGS: dict[str, tuple[Callable[[], None], Callable[[], Callable[..., Classifier]]]] = {
    "cpu-bf16-channels_last": (lambda: None, lambda: _torch("cpu", "bf16")),
    "cpu-openvino-bf16": (_needs_openvino, lambda: _openvino),
    # inductor on the CPU; lazily compiled, so only the two batch shapes used here are built
    "cpu-bf16-compile": (lambda: None, lambda: _torch("cpu", "bf16", compile="on")),
    "cuda-bf16": (_needs_cuda, lambda: _torch("cuda", "bf16", compile="off", cuda_graphs="off")),
    "cuda-fp16": (_needs_cuda, lambda: _torch("cuda", "fp16", compile="off", cuda_graphs="off")),
    "cuda-bf16-compile-cudagraphs": (
        _needs_cuda,
        lambda: _torch("cuda", "bf16", compile="on", cuda_graphs="on"),
    ),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_fast_numerics_match_fp32_on_200_held_out_photos(reference: Reference, config: str) -> None:
    precondition, factory = CONFIGS[config]
    precondition()
    clf = factory()(copy.deepcopy(reference.model))
    p = _p_crack(clf, reference.pixels)
    p32 = reference.p32
    agreement = float(np.mean((p32 >= 0.5) == (p >= 0.5)))
    mean_abs = float(np.mean(np.abs(p32 - p)))
    print(f"\n{config}: agreement {agreement:.4f}; mean |dp| {mean_abs:.5f}; "
          f"max |dp| {np.abs(p32 - p).max():.4f}")  # fmt: skip
    assert agreement >= 0.995
    assert mean_abs <= 0.01

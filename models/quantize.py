"""INT8 for the OpenVINO backend: quantise a trained model, and keep it only if it agrees.

Post-training quantisation (NNCF, calibrated on training photos) runs ResNet50 about 1.9x
faster than bf16 on a CPU without AMX, but rounding moves every probability a little and
can flip the label of a photo near the threshold. So a quantised graph is kept only when
it agrees with the same model in fp32 on held-out photos as closely as every fast path
must (`Parity`): checked per model version, on that version's own validation photos.

The graph travels inside the checkpoint (`INT8_KEY`), so the checkpoint's sha256 covers it
and a worker needs only `openvino` to serve it; NNCF is needed only where models are made.
A fine-tuning run does this work in a child process (worker.int8_job).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.datasets import Sample
from models.imagedata import load_rgb
from models.network import CRACK_INDEX
from models.numerics import resolve_numerics
from models.serving import Classifier
from models.transforms import EvalPreset, stack

log = logging.getLogger(__name__)

INT8_KEY = "openvino_int8"  # checkpoint payload: {"xml": str, "weights": bytes, "parity": {...}}
# The bar every fast numerics path meets against fp32 (tests/models/test_numerics_parity.py).
MIN_AGREEMENT = 0.995
MAX_MEAN_ABS_DP = 0.01
MIN_CHECK_PHOTOS = 200  # fewer cannot show 99.5% agreement: one flip is already 0.5%
CALIBRATION_PHOTOS = 300


@dataclass(frozen=True)
class Parity:
    """How a fast path's crack probabilities compare with fp32 on the same photos."""

    photos: int
    agreement: float  # share of photos given the same label
    mean_abs_dp: float  # mean |p_crack - p_crack_fp32|

    @property
    def passed(self) -> bool:
        return (
            self.photos >= MIN_CHECK_PHOTOS
            and self.agreement >= MIN_AGREEMENT
            and self.mean_abs_dp <= MAX_MEAN_ABS_DP
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare(p_fp32: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> Parity:
    """Parity of crack probabilities `p` with `p_fp32`, labels at the model's `threshold`."""
    if p_fp32.shape != p.shape or not len(p):
        raise ValueError(
            f"need two equal, non-empty sets of probabilities: {p_fp32.shape}, {p.shape}"
        )
    agreement = float(np.mean((p_fp32 >= threshold) == (p >= threshold)))
    return Parity(len(p), round(agreement, 4), round(float(np.mean(np.abs(p_fp32 - p))), 5))


def nncf_installed() -> bool:
    """True when NNCF (needed to quantise, not to serve) can be imported."""
    return importlib.util.find_spec("nncf") is not None


def pixels_of(samples: Sequence[Sample], size: int) -> list[np.ndarray]:
    """Each readable photo as the uint8 pixels a worker would classify (unreadable ones left out)."""
    preset, out = EvalPreset(size), []
    for path, _ in samples:
        try:
            out.append(preset(load_rgb(path, size)))
        except Exception as exc:  # a broken file is a training-data problem reported elsewhere
            log.debug("left %s out of the INT8 photos: %s", path, exc)
    return out


def p_crack(clf: Classifier, pixels: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
    """Crack probabilities from `clf` for every photo, in batches."""
    probs = [clf.predict(stack(pixels[i : i + batch])) for i in range(0, len(pixels), batch)]
    return torch.cat(probs)[:, CRACK_INDEX].double().numpy()


def quantize(model: nn.Module, calibration: Sequence[np.ndarray], size: int) -> dict[str, Any]:
    """An INT8 OpenVINO graph of `model` (uint8 NHWC in, logits out), serialised.

    Activation ranges come from `calibration` photos, which should look like what the
    worker will see: the model's training photos.
    """
    from models.openvino_backend import disable_telemetry, to_openvino

    disable_telemetry()  # before NNCF, which would report usage through it too
    import nncf
    import openvino as ov

    graph = to_openvino(model, size)
    dataset = nncf.Dataset(list(calibration), lambda pixels: pixels[None])
    # NNCF draws progress bars on stdout, where benchmarks print their JSON lines.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(graph, dataset, subset_size=len(calibration))
    with tempfile.TemporaryDirectory(prefix="crackq-int8-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(quantized, xml)
        return {"xml": xml.read_text(), "weights": xml.with_suffix(".bin").read_bytes()}


def build_int8(
    model: nn.Module,
    calibration: Sequence[np.ndarray],
    check: Sequence[np.ndarray],
    size: int = 224,
    threshold: float = 0.5,
) -> tuple[dict[str, Any] | None, Parity]:
    """Quantise `model` and compare it with fp32 on the `check` photos.

    Returns the checkpoint entry (graph and parity) when the graph passes, else None, and
    the parity either way. `check` must be photos the model was not trained on.
    """
    from models.openvino_backend import OpenVINOClassifier

    started = time.perf_counter()
    graph = quantize(model, calibration, size)
    fp32 = Classifier(
        copy.deepcopy(model), resolve_numerics("cpu", "fp32", False), "fp32", size, threshold
    )
    numerics = resolve_numerics("cpu", "auto", True)
    int8 = OpenVINOClassifier(model, numerics, "int8-check", size, threshold, int8=graph)
    parity = compare(p_crack(fp32, check), p_crack(int8, check), threshold)
    log.info(
        "INT8 graph %s parity on %d photos: agreement %.4f, mean |dp| %.5f (%.0f s)",
        "passed" if parity.passed else "FAILED",
        parity.photos,
        parity.agreement,
        parity.mean_abs_dp,
        time.perf_counter() - started,
    )
    return ({**graph, "parity": parity.to_dict()} if parity.passed else None), parity


def why_no_int8(val_photos: int) -> dict[str, Any] | None:
    """The run's report when no graph can be made, or None when quantising is worth trying.

    No graph without NNCF and OpenVINO, or with fewer validation photos than the check needs.
    """
    from models.openvino_backend import openvino_installed

    if not (openvino_installed() and nncf_installed()):
        return {"skipped": "needs openvino and nncf: pip install 'crackq[openvino]'"}
    if val_photos < MIN_CHECK_PHOTOS:
        return _too_few(val_photos)
    return None


def draw_photos(
    train: Sequence[Sample], val: Sequence[Sample], check_photos: int = 500
) -> tuple[list[str], list[str]]:
    """Up to CALIBRATION_PHOTOS training and `check_photos` validation paths, fixed seed."""
    rng = random.Random(0)
    calibration = rng.sample(list(train), min(len(train), CALIBRATION_PHOTOS))
    check = rng.sample(list(val), min(len(val), check_photos))
    return [path for path, _ in calibration], [path for path, _ in check]


def int8_entry(
    model: nn.Module, calibration: Sequence[str], check: Sequence[str], size: int, threshold: float
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The checkpoint entry (None unless the graph passes) and the run's report.

    Photos that cannot be read are left out; fewer than MIN_CHECK_PHOTOS readable check
    photos give no graph.
    """
    check_pixels = pixels_of([(path, 0) for path in check], size)
    if len(check_pixels) < MIN_CHECK_PHOTOS:
        return None, _too_few(len(check_pixels))
    calibration_pixels = pixels_of([(path, 0) for path in calibration], size)
    entry, parity = build_int8(model.eval(), calibration_pixels, check_pixels, size, threshold)
    return entry, {**parity.to_dict(), "calibration_photos": len(calibration_pixels)}


def _too_few(photos: int) -> dict[str, Any]:
    reason = f"{photos} validation photos; the check needs at least {MIN_CHECK_PHOTOS}"
    log.info("no INT8 graph: %s", reason)
    return {"skipped": reason}

"""INT8 for the OpenVINO backend: quantise a trained model, and keep it only if it agrees.

Post-training quantisation (NNCF, calibrated on training photos) runs ResNet50 about 1.9x
faster than bf16 on a CPU without AMX, but rounding moves every probability a little and
can flip the label of a photo near the threshold. So a quantised graph is kept only when
it agrees with the same model in fp32 on held-out photos as closely as every fast path
must (`Parity`): checked per model version, on that version's own validation photos.

The graph travels inside the checkpoint (`INT8_KEY`), so the checkpoint's sha256 covers it
and a worker needs only `openvino` to serve it; NNCF is needed only where models are made.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import random
import subprocess
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

from models.classifier import CRACK_INDEX, Classifier, resolve_numerics
from models.datasets import Sample, load_rgb
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


def compare(p_fp32: np.ndarray, p: np.ndarray) -> Parity:
    """Parity of crack probabilities `p` with `p_fp32` (labels at p >= 0.5, as predict gives)."""
    if p_fp32.shape != p.shape or not len(p):
        raise ValueError(
            f"need two equal, non-empty sets of probabilities: {p_fp32.shape}, {p.shape}"
        )
    agreement = float(np.mean((p_fp32 >= 0.5) == (p >= 0.5)))
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
    parity = compare(p_crack(fp32, check), p_crack(int8, check))
    log.info(
        "INT8 graph %s parity on %d photos: agreement %.4f, mean |dp| %.5f (%.0f s)",
        "passed" if parity.passed else "FAILED",
        parity.photos,
        parity.agreement,
        parity.mean_abs_dp,
        time.perf_counter() - started,
    )
    return ({**graph, "parity": parity.to_dict()} if parity.passed else None), parity


def int8_for_checkpoint(
    checkpoint: Path,
    sha256: str,
    train: Sequence[Sample],
    val: Sequence[Sample],
    check_photos: int = 500,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The INT8 entry for a freshly saved checkpoint, and a report for its run.

    Calibrates on up to CALIBRATION_PHOTOS training photos and checks on up to
    `check_photos` validation photos, both drawn with a fixed seed. The entry is None when
    NNCF or OpenVINO is missing, when there are too few validation photos, when the graph
    fails the check, or when quantising failed; the report says which.

    The work runs in a child process without the preloaded allocator: OpenVINO's CPU
    plugin aborts under tcmalloc, which training workers preload, and a native crash
    there must not take the training run down with it.
    """
    from models.openvino_backend import openvino_installed

    if not (openvino_installed() and nncf_installed()):
        return None, {"skipped": "needs openvino and nncf: pip install 'crackq[openvino]'"}
    if len(val) < MIN_CHECK_PHOTOS:
        return None, _too_few(len(val))
    rng = random.Random(0)
    job = {
        "checkpoint": str(checkpoint),
        "sha256": sha256,
        "calibration": [
            path for path, _ in rng.sample(list(train), min(len(train), CALIBRATION_PHOTOS))
        ],
        "check": [path for path, _ in rng.sample(list(val), min(len(val), check_photos))],
    }
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    with tempfile.TemporaryDirectory(prefix="crackq-int8-") as tmp:
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        argv = [sys.executable, "-m", "models.quantize", tmp]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log.error(
                "INT8 quantisation failed (exit %d): %s", proc.returncode, proc.stderr[-3000:]
            )
            return None, {"skipped": f"quantisation failed (exit {proc.returncode}): {last}"}
        result = torch.load(Path(tmp) / "int8.pt", weights_only=True)
    return result["entry"], result["report"]


def _too_few(photos: int) -> dict[str, Any]:
    reason = f"{photos} validation photos; the check needs at least {MIN_CHECK_PHOTOS}"
    log.info("no INT8 graph: %s", reason)
    return {"skipped": reason}


def _run_job(folder: Path) -> None:
    """The child's side of int8_for_checkpoint: job.json in `folder`, int8.pt out."""
    from models.checkpoints import (
        input_size_and_threshold,
        load_checkpoint,
        model_from_checkpoint,
    )

    job = json.loads((folder / "job.json").read_text())
    payload = load_checkpoint(Path(job["checkpoint"]), job["sha256"])
    size, threshold = input_size_and_threshold(payload)
    check = pixels_of([(path, 0) for path in job["check"]], size)
    entry, report = None, _too_few(len(check))
    if len(check) >= MIN_CHECK_PHOTOS:
        calibration = pixels_of([(path, 0) for path in job["calibration"]], size)
        model = model_from_checkpoint(payload).eval()
        entry, parity = build_int8(model, calibration, check, size, threshold)
        report = {**parity.to_dict(), "calibration_photos": len(calibration)}
    torch.save({"entry": entry, "report": report}, folder / "int8.pt")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="int8: %(message)s")
    _run_job(Path(sys.argv[1]))

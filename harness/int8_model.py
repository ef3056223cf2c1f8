"""The INT8 checkpoint benchmarks and tests serve: for speed, so random weights, unchecked.

Workers serve INT8 only from a checkpoint whose graph passed its parity check against
fp32 (models.quantize; a fine-tuning run makes one). Speed does not depend on the weights,
so the benchmarks quantise the same random-init ResNet50 the other figures use, calibrated
on random pixels, and skip the check: this model's answers mean nothing either way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def checkpoint(dest_dir: Path, version: str = "bench-int8", seed: int = 0) -> Path | None:
    """A checkpoint with an INT8 graph when a CPU worker here would serve one, else None.

    `seed` picks the random weights (0: those benchmarks.model_speed measures).
    """
    import numpy as np
    import torch

    from models.checkpoints import save_checkpoint
    from models.network import build_model
    from models.numerics import resolve_device
    from models.quantize import INT8_KEY, nncf_installed, quantize
    from worker.launch import serves_openvino
    from worker.settings import get_settings

    settings = get_settings()
    on_cpu = resolve_device(settings.device).type == "cpu"
    if settings.int8 != "auto" or not on_cpu or not serves_openvino(settings):
        return None
    if not nncf_installed():
        log.warning("nncf is not installed: no INT8 figures (pip install 'crackq[openvino]')")
        return None
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model()
    rng = np.random.default_rng(0)
    calibration = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(32)]
    entry = quantize(model, calibration, 224)
    entry["parity"] = {"skipped": "benchmark model: random weights, measured for speed only"}
    path = dest_dir / f"{version}.pt"
    save_checkpoint(path, model, version=version, **{INT8_KEY: entry})
    log.info("INT8 benchmark checkpoint %s made in %.0f s", path, time.perf_counter() - started)
    return path

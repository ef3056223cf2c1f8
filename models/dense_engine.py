"""The fully convolutional map's forward pass: a block of pixels -> crack probabilities per window.

Built beside a served Classifier from the same weights when dense maps are on; torch on
any device, OpenVINO on the CPU (float only: an INT8 graph is quantised for 224 px inputs
and is not reused here).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from models.dense import CELL, DenseNet, crack_probabilities, window_cells
from models.numerics import Numerics
from models.transforms import mean_std, normalise

log = logging.getLogger(__name__)


class TorchDense:
    """uint8 (1, H, W, 3) block -> float32 (rows, cols) crack probabilities, in torch."""

    name = "torch"

    def __init__(self, model: nn.Module, numerics: Numerics, input_size: int, step: int) -> None:
        self.numerics = numerics
        self.step = step
        net = DenseNet(copy.deepcopy(model), window_cells(input_size), step).eval()
        net = net.to(numerics.device)
        if numerics.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.to(dtype=numerics.dtype)
        self.stats = mean_std(numerics.device)
        self.memory = torch.channels_last if numerics.channels_last else torch.contiguous_format

    @torch.inference_mode()
    def predict(self, pixels: np.ndarray) -> np.ndarray:
        x = normalise(torch.from_numpy(pixels).to(self.numerics.device), self.stats)
        return crack_probabilities(
            self.net(x.to(dtype=self.numerics.dtype, memory_format=self.memory))
        )

    def close(self) -> None:
        """Nothing native to release: torch frees the weights with the object."""


class OpenVINODense:
    """The same, through OpenVINO on the CPU (bf16 where the CPU has it), any block size."""

    name = "openvino"

    def __init__(
        self, model: nn.Module, precision: str, input_size: int, step: int, threads: int = 0
    ) -> None:
        from models.openvino_backend import disable_telemetry, pixels_in, shared_core

        disable_telemetry()
        import openvino as ov

        started = time.perf_counter()
        self.step = step
        net = DenseNet(copy.deepcopy(model), window_cells(input_size), step).eval().float().cpu()
        side = input_size + step * CELL
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit, inside the converter
            graph = ov.convert_model(net, example_input=torch.zeros(1, 3, side, side))
        graph.reshape([1, 3, -1, -1])
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self.compiled: Any = shared_core().compile_model(pixels_in(graph), "CPU", config)
        self.request: Any = self.compiled.create_infer_request()
        self.lock = threading.Lock()
        log.info(
            "OpenVINO %s dense map graph compiled in %.1f s",
            precision,
            time.perf_counter() - started,
        )

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        with self.lock:
            if self.request is None:
                raise RuntimeError("the dense map graph is closed")
            logits = np.array(self.request.infer({0: np.ascontiguousarray(pixels)})[0])
        return crack_probabilities(torch.from_numpy(logits))

    def close(self) -> None:
        with self.lock:
            self.request = None
            self.compiled = None


DenseEngine = TorchDense | OpenVINODense


def dense_engine(
    model: nn.Module,
    numerics: Numerics,
    backend: str,
    input_size: int,
    step: int,
    threads: int = 0,
) -> DenseEngine:
    """The dense forward pass for `model` on the classifier's backend (a resolved name)."""
    if backend == "openvino":
        precision = "bf16" if numerics.dtype == torch.bfloat16 else "f32"
        return OpenVINODense(model, precision, input_size, step, threads)
    return TorchDense(model, numerics, input_size, step)

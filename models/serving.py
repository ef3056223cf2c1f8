"""Serving a network: batch buckets, CUDA graphs, and the pixels-to-probabilities module."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from models.numerics import Numerics
from models.transforms import mean_std, normalise

if TYPE_CHECKING:
    from models.dense_engine import DenseEngine

log = logging.getLogger(__name__)


def batch_buckets(max_batch: int, smallest: int = 1) -> tuple[int, ...]:
    """Powers of two from `smallest` up to the first >= max_batch: the shapes a padded model sees."""
    sizes = [min(smallest, max_batch)]
    while sizes[-1] < max_batch:
        sizes.append(sizes[-1] * 2)
    return tuple(sizes)


class Classifier:
    """A model prepared for inference: eval mode, target device, dtype and memory format."""

    def __init__(
        self,
        model: nn.Module,
        numerics: Numerics,
        version: str,
        input_size: int = 224,
        threshold: float = 0.5,
        max_batch: int = 32,
    ) -> None:
        self.numerics = numerics
        self.version = version
        self.input_size = input_size  # the side it was trained at; preprocessing must match
        # The side of the photos it learned from, before they were resized to input_size:
        # the tile of a crack map (worker.mapping). The checkpoint says; else input_size.
        self.patch_size = input_size
        # Compiled or captured forward passes see only these batch sizes (padded up).
        # A GPU runs 8 images as fast as 1, so it skips the three smallest shapes.
        smallest = 8 if numerics.device.type == "cuda" else 1
        self.buckets = batch_buckets(max_batch, smallest) if numerics.padded else ()
        # The operating point chosen on validation data: a photo is a crack when its crack
        # probability is >= threshold. predict returns plain probabilities; the caller
        # compares (worker.pipeline.verdict), so no hidden shift hides the threshold.
        self.threshold = threshold
        # The fully convolutional map engine of the same weights, when dense maps are on
        # (models.dense_engine; the loader attaches it). Closed with the classifier.
        self.dense: DenseEngine | None = None
        self.prepare(model)

    @property
    def serving(self) -> str:
        """What computes the forward pass, for logs and benchmarks."""
        return self.numerics.name

    def prepare(self, model: nn.Module) -> None:
        """Make `model` ready for `logits` (a backend overrides both)."""
        model = model.eval().to(self.numerics.device)
        if self.numerics.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels
        if self.numerics.channels_last:
            model = model.to(memory_format=torch.channels_last)
        # Weights are cast to the inference dtype once; autocast would re-cast per call.
        self.model = model.to(dtype=self.numerics.dtype)
        serving = Serving(self.model, self.numerics).to(self.numerics.device)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = serving
        if self.numerics.compile:
            _allow_recompiles(len(self.buckets))
            self.forward = torch.compile(serving, dynamic=False)
        self.graphs: dict[int, _Graph] = {}
        self._graph_pool: Any = None  # one memory pool for all captured sizes
        self.lock = threading.Lock()  # captured graphs share their input and output buffers

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw float32 logits (N, 2) on the CPU for a uint8 (N,H,W,3) batch of pixels.

        The pixels cross to the device as uint8 (a quarter of the bytes of float32) and are
        normalised there, straight into the layout the model wants.
        """
        x = pixels.to(self.numerics.device, non_blocking=True)
        if not self.buckets:
            return self.forward(x).float().cpu()
        out = [self._padded(chunk) for chunk in x.split(self.buckets[-1])]
        return torch.cat(out)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """Run a compiled or captured forward at the smallest bucket that holds `x`."""
        n = len(x)
        size = next(b for b in self.buckets if b >= n)
        if size > n:
            x = torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))])
        if not self.numerics.cuda_graphs:
            return self.forward(x)[:n].float().cpu()
        with self.lock:
            graph = self.graphs.get(size) or self._capture(size)
            graph.pixels.copy_(x)
            graph.graph.replay()
            return graph.logits[:n].float().cpu()

    def _capture(self, size: int) -> _Graph:
        """Record the forward pass at batch `size` as a CUDA graph (after warm-up runs)."""
        dev = self.numerics.device
        pixels = torch.zeros(
            size, self.input_size, self.input_size, 3, dtype=torch.uint8, device=dev
        )
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):  # compile, autotune and allocate outside the capture
                self.forward(pixels)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a hot reload captures the new version in the poll thread while the
        # serving thread keeps running the old one; "global" would make its CUDA calls fail.
        with torch.cuda.graph(graph, pool=self._pool(), capture_error_mode="thread_local"):
            logits = self.forward(pixels)
        self.graphs[size] = _Graph(graph, pixels, logits)
        return self.graphs[size]

    def _pool(self) -> Any:
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        return self._graph_pool

    def close(self) -> None:
        """Release what the forward pass holds natively (captured graphs; a backend's engine).

        After close the classifier must not predict. A worker closes its model at shutdown,
        on the thread that loaded it, so nothing native is left to garbage collection at exit.
        """
        with self.lock:
            self.graphs.clear()
            self._graph_pool = None
        if self.dense is not None:
            self.dense.close()

    @torch.inference_mode()
    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, 2), float32 on the CPU, for uint8 (N,H,W,3) pixels.

        `pixels` are what `models.transforms.EvalPreset` makes of each image, stacked.
        """
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 (N,H,W,3) pixels, got {pixels.dtype} {tuple(pixels.shape)}"
            )
        return torch.softmax(self.logits(pixels), dim=1)

    def warm_up(self, batch: int = 2) -> None:
        """Run the model before the first request, so no request pays for kernel selection.

        A compiled or captured model runs once per bucket, largest first (CUDA graphs then
        share one memory pool); that compiles every shape it will see, which takes a while.
        """
        size = self.input_size
        sizes = sorted(self.buckets, reverse=True) or [batch]
        for n in sizes:
            started = time.perf_counter()
            self.predict(torch.zeros(n, size, size, 3, dtype=torch.uint8))
            if self.buckets:
                log.info(
                    "%s: batch %d ready in %.1f s",
                    self.numerics.name,
                    n,
                    time.perf_counter() - started,
                )


class Serving(nn.Module):
    """uint8 (N,H,W,3) pixels in, logits out: normalisation, dtype and layout, then `model`.

    One module, so torch.compile sees the whole step and fuses the normalisation into the
    first convolution's input, and a new model version (same structure, new weights) reuses
    the compiled code: dynamo treats parameters and buffers as inputs.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, numerics: Numerics) -> None:
        super().__init__()
        self.model = model
        self.dtype = numerics.dtype
        self.memory = torch.channels_last if numerics.channels_last else torch.contiguous_format
        mean, std = mean_std("cpu")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = normalise(pixels, (self.mean, self.std))
        return self.model(x.to(dtype=self.dtype, memory_format=self.memory))


@dataclass(frozen=True)
class _Graph:
    """A captured forward pass and the static buffers it reads and writes."""

    graph: Any
    pixels: torch.Tensor
    logits: torch.Tensor


def _allow_recompiles(shapes: int) -> None:
    """Let dynamo keep one compiled graph per bucket (its default limit is 8)."""
    import torch._dynamo.config as dynamo_config

    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), shapes + 2))

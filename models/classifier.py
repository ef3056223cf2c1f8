"""The crack classifier: torchvision ResNet50 with a 2-class head, and batch prediction."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from models.transforms import mean_std, normalise

log = logging.getLogger(__name__)

CLASSES = ("no_crack", "crack")  # output index 1 is the crack probability
CRACK_INDEX = 1
ARCHITECTURE = "resnet50"
# Pin named weights: DEFAULT changes meaning across torchvision releases.
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights are neither cached locally nor downloadable."""


def build_model(num_classes: int = len(CLASSES)) -> nn.Module:
    """ResNet50 with a fresh `num_classes` head and random weights."""
    return resnet50(weights=None, num_classes=num_classes)


def imagenet_cache_path() -> Path:
    """Where torchvision caches the pinned ImageNet weights ($TORCH_HOME/hub/checkpoints)."""
    hub = Path(torch.hub.get_dir())
    return hub / "checkpoints" / os.path.basename(IMAGENET_WEIGHTS.url)


def imagenet_available() -> bool:
    """True when the pinned ImageNet weights are already in the local torch cache."""
    return imagenet_cache_path().is_file()


def load_imagenet_backbone(num_classes: int = len(CLASSES), download: bool = True) -> nn.Module:
    """ResNet50 with ImageNet weights (IMAGENET1K_V2) and a fresh `num_classes` head.

    Uses the torchvision weights API, which reads $TORCH_HOME's cache first. Offline with
    an empty cache this raises PretrainedUnavailable telling how to provide the file.
    """
    if not download and not imagenet_available():
        raise PretrainedUnavailable(_missing_message())
    try:
        model = resnet50(weights=IMAGENET_WEIGHTS)
    except Exception as exc:  # urllib/ssl/socket errors differ by platform
        raise PretrainedUnavailable(f"{_missing_message()} ({type(exc).__name__}: {exc})") from exc
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _missing_message() -> str:
    return (
        f"ImageNet weights {IMAGENET_WEIGHTS} are not cached at {imagenet_cache_path()} and "
        f"could not be downloaded from {IMAGENET_WEIGHTS.url}; copy that file there "
        "(or set TORCH_HOME to a folder holding hub/checkpoints/), or run without them"
    )


@dataclass(frozen=True)
class Numerics:
    """How inference runs: device, dtype, memory format, and graph capture.

    compile: torch.compile (inductor) the forward pass, normalisation included.
    cuda_graphs: replay the forward pass from captured CUDA graphs (GPU only), which
    removes the per-kernel launch cost that dominates small batches.
    Either one pads batches to a power of two, so a few shapes are compiled or captured
    once, at load, instead of one per batch size at request time.
    """

    device: torch.device
    dtype: torch.dtype
    channels_last: bool
    compile: bool = False
    cuda_graphs: bool = False

    @property
    def name(self) -> str:
        fmt = "channels_last" if self.channels_last else "nchw"
        extras = "".join(
            f"+{flag}"
            for flag, on in (("compile", self.compile), ("cudagraphs", self.cuda_graphs))
            if on
        )
        return f"{self.device.type}-{str(self.dtype).removeprefix('torch.')}-{fmt}{extras}"

    @property
    def padded(self) -> bool:
        """True when batches are padded to fixed shapes (compiled or captured forward)."""
        return self.compile or self.cuda_graphs


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 natively (AVX-512 BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


SWITCHES = ("auto", "on", "off")


def resolve_numerics(
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    compile: str = "off",
    cuda_graphs: str = "off",
) -> Numerics:
    """Pick dtype for `precision`: auto = bf16 on native-bf16 CPUs and GPUs, fp16 on older GPUs.

    compile and cuda_graphs are auto, on or off; auto turns both on for CUDA devices and
    off on the CPU (where OpenVINO is the fast path, and inductor's C++ build takes about
    30 s per batch shape on 2 cores).
    """
    dev = resolve_device(device)
    for name, value in (("compile", compile), ("cuda_graphs", cuda_graphs)):
        if value not in SWITCHES:
            raise ValueError(f"{name} must be one of {SWITCHES}, got {value!r}")
    use_compile = compile == "on" or (compile == "auto" and dev.type == "cuda")
    use_graphs = cuda_graphs == "on" or (cuda_graphs == "auto" and dev.type == "cuda")
    if use_graphs and dev.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device; set cuda_graphs to auto or off")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision != "auto":
        dtype = dtypes[precision]
    elif dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    if dev.type == "cpu" and dtype == torch.float16:
        raise ValueError("fp16 inference is for GPUs; use bf16 or fp32 on the CPU")
    return Numerics(dev, dtype, channels_last, use_compile, use_graphs)


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
        # Compiled or captured forward passes see only these batch sizes (padded up).
        # A GPU runs 8 images as fast as 1, so it skips the three smallest shapes.
        smallest = 8 if numerics.device.type == "cuda" else 1
        self.buckets = batch_buckets(max_batch, smallest) if numerics.padded else ()
        # The operating point chosen on validation data. Shifting the crack logit by
        # logit(threshold) makes p >= 0.5 exactly where the raw p >= threshold, so label,
        # confidence and crack probability stay consistent.
        t = min(max(threshold, 1e-4), 1 - 1e-4)
        self.logit_shift = float(torch.logit(torch.tensor(t)))
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

    @torch.inference_mode()
    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, 2), float32 on the CPU, for uint8 (N,H,W,3) pixels.

        `pixels` are what `models.transforms.EvalPreset` makes of each image, stacked.
        """
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 (N,H,W,3) pixels, got {pixels.dtype} {tuple(pixels.shape)}"
            )
        logits = self.logits(pixels)
        if self.logit_shift:
            logits[:, CRACK_INDEX] -= self.logit_shift
        return torch.softmax(logits, dim=1)

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


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily run torch with `n` intra-op threads (0 leaves the setting unchanged)."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

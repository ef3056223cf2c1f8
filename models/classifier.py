"""The crack classifier: torchvision ResNet50 with a 2-class head, and batch prediction."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from models.transforms import normalise

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
    """How inference runs: device, dtype and memory format."""

    device: torch.device
    dtype: torch.dtype
    channels_last: bool

    @property
    def name(self) -> str:
        fmt = "channels_last" if self.channels_last else "nchw"
        return f"{self.device.type}-{str(self.dtype).removeprefix('torch.')}-{fmt}"


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 natively (AVX-512 BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def resolve_numerics(
    device: str = "auto", precision: str = "auto", channels_last: bool = True
) -> Numerics:
    """Pick dtype for `precision`: auto = bf16 on native-bf16 CPUs and GPUs, fp16 on older GPUs."""
    dev = resolve_device(device)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision != "auto":
        dtype = dtypes[precision]
    elif dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    if dev.type == "cpu" and dtype == torch.float16:
        raise ValueError("fp16 inference is for GPUs; use bf16 or fp32 on the CPU")
    return Numerics(dev, dtype, channels_last)


class Classifier:
    """A model prepared for inference: eval mode, target device, dtype and memory format."""

    def __init__(
        self,
        model: nn.Module,
        numerics: Numerics,
        version: str,
        input_size: int = 224,
        threshold: float = 0.5,
    ) -> None:
        self.numerics = numerics
        self.version = version
        self.input_size = input_size  # the side it was trained at; preprocessing must match
        # The operating point chosen on validation data. Shifting the crack logit by
        # logit(threshold) makes p >= 0.5 exactly where the raw p >= threshold, so label,
        # confidence and crack probability stay consistent.
        t = min(max(threshold, 1e-4), 1 - 1e-4)
        self.logit_shift = float(torch.logit(torch.tensor(t)))
        self.prepare(model)

    def prepare(self, model: nn.Module) -> None:
        """Make `model` ready for `logits` (a backend overrides both)."""
        model = model.eval().to(self.numerics.device)
        if self.numerics.channels_last:
            model = model.to(memory_format=torch.channels_last)
        # Weights are cast to the inference dtype once; autocast would re-cast per call.
        self.model = model.to(dtype=self.numerics.dtype)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw float32 logits (N, 2) on the CPU for a uint8 (N,H,W,3) batch of pixels.

        The pixels cross to the device as uint8 (a quarter of the bytes of float32) and are
        normalised there, straight into the layout the model wants.
        """
        x = normalise(pixels.to(self.numerics.device, non_blocking=True))
        memory = torch.channels_last if self.numerics.channels_last else torch.contiguous_format
        x = x.to(dtype=self.numerics.dtype, memory_format=memory)
        return self.model(x).float().cpu()

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
        """One forward pass so the first real request does not pay for kernel selection."""
        size = self.input_size
        self.predict(torch.zeros(batch, size, size, 3, dtype=torch.uint8))


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

"""How inference runs: device, precision policy, memory format, graph capture and threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


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

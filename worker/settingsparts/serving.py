"""Settings of the model and how inference workers run it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class ServingSettings(BaseModel):
    """Model / inference: device, numerics, engine and batching."""

    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    model_checkpoint: Path | None = Field(
        None, description="Checkpoint to serve; overrides the registry's promoted version."
    )
    pretrained: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Use torchvision ImageNet weights (IMAGENET1K_V2) when no trained "
        "checkpoint exists: auto (if cached locally), always (fail if missing), never.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Inference numerics; auto = bf16 on CPUs/GPUs that support it."
    )
    channels_last: bool = Field(True, description="Use channels_last memory format.")
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the model (torch backend): auto = on for GPUs, off on "
        "CPUs. Compiles one shape per power-of-two batch size at load (minutes).",
    )
    cuda_graphs: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Replay the forward pass from captured CUDA graphs: auto = on for GPUs.",
    )
    backend: Literal["auto", "torch", "openvino"] = Field(
        "auto",
        description="Inference engine: auto = OpenVINO on the CPU when installed "
        "(crackq[openvino]), else torch; GPUs always use torch.",
    )
    int8: Literal["auto", "off"] = Field(
        "auto",
        description="auto: fine-tuning runs also save an INT8 graph of the model when it "
        "agrees with fp32 on the run's validation photos (needs crackq[openvino]), and "
        "OpenVINO workers serve it (about 1.9x faster than bf16 here); off: neither.",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Largest inference batch.")
    batch_wait_ms: int = Field(
        20,
        ge=0,
        description="How long a partial batch waits for more messages while another "
        "batch is in flight.",
    )
    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding images.")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads (0 = all cores).")
    model_poll_s: float = Field(
        5.0, gt=0, description="How often inference workers check for a newly promoted model."
    )

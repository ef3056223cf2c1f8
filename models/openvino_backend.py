"""The same checkpoint served through OpenVINO on the CPU, converted from torch when loaded."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from models.numerics import Numerics
from models.serving import Classifier
from models.transforms import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino")


class BackendUnavailable(RuntimeError):
    """The requested inference backend cannot run here."""


def openvino_installed() -> bool:
    """True when the optional `openvino` package can be imported (checked without importing)."""
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """`auto`: OpenVINO for CPU inference when it is installed, else torch."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    on_cpu = torch.device(device).type == "cpu"
    if backend == "auto":
        return "openvino" if on_cpu and openvino_installed() else "torch"
    if backend == "openvino":
        if not on_cpu:
            raise BackendUnavailable("the OpenVINO backend runs on the CPU; use torch on GPUs")
        if not openvino_installed():
            raise BackendUnavailable(
                "backend openvino needs the openvino package: pip install 'crackq[openvino]'"
            )
    return backend


def disable_telemetry() -> None:
    """Keep OpenVINO's model converter from reporting usage to Google Analytics.

    Importing and running `openvino.tools.ovc` sends usage events through the optional
    `openvino_telemetry` package unless a user opted out; a worker must not phone home,
    and behind an egress firewall each attempt would stall its start. Every place that
    imports the package falls back to a bundled no-op stub when the import fails, so we
    make it fail: a None entry in sys.modules turns `import` into ImportError.
    """
    if sys.modules.setdefault("openvino_telemetry", None) is not None:  # type: ignore[arg-type]
        log.warning("openvino_telemetry was imported before crackq could turn it off")


# pid -> (thread that made it, ov.Core); a forked child makes its own, never frees its parent's
_cores: dict[int, tuple[int, Any]] = {}
_cores_lock = threading.Lock()


def shared_core() -> Any:
    """This process's one OpenVINO Core, its CPU plugin loaded now, on the calling thread.

    One Core for the life of the process, not one per model: loading the CPU plugin installs
    an alternate signal stack (sigaltstack) on the thread that loads it, and unloading the
    plugin unmaps that stack from whichever thread drops the plugin's last user, restoring
    the old one only if that is the same thread. With a Core per model, a model compiled on
    the main thread and dropped by the model-poll thread (a hot switch) left the main
    thread's signal stack unmapped: the next signal, SIGTERM, killed the worker with a silent
    SIGSEGV (si_code SI_KERNEL: no stack to deliver it on). release_core() drops it, on the
    same thread, once every model compiled from it is closed.
    """
    disable_telemetry()
    import openvino as ov

    with _cores_lock:
        if os.getpid() not in _cores:
            core = ov.Core()
            core.get_property("CPU", "FULL_DEVICE_NAME")  # loads the plugin here, not later
            _cores[os.getpid()] = (threading.get_ident(), core)
        return _cores[os.getpid()][1]


def release_core() -> bool:
    """Drop the shared Core (the plugin goes with its last model); True if it was dropped.

    Only on the thread that made it (see shared_core); elsewhere it is kept until exit.
    """
    with _cores_lock:
        made = _cores.get(os.getpid())
        if made is None:
            return False
        if made[0] != threading.get_ident():
            log.warning("the OpenVINO Core was made on another thread: kept until exit")
            return False
        del _cores[os.getpid()]
    return True


class OpenVINOClassifier(Classifier):
    """A Classifier whose forward pass runs in OpenVINO (bf16 where the CPU has it).

    The torch model is traced once at load (about 10 s for ResNet50 here) into a graph
    with a dynamic batch axis; the torch weights are then dropped. Given `int8` (a
    checkpoint's quantised graph, see models.quantize), that graph is served instead.
    Calls are serialised: one compiled model with the latency hint already uses every
    core for one batch.
    """

    def __init__(
        self,
        model: nn.Module,
        numerics: Numerics,
        version: str,
        input_size: int = 224,
        threshold: float = 0.5,
        threads: int = 0,
        int8: dict[str, Any] | None = None,
    ) -> None:
        if numerics.device.type != "cpu":
            raise BackendUnavailable("the OpenVINO backend runs on the CPU")
        self.threads = threads
        self.quantized = int8 is not None
        self._int8 = int8  # read once by prepare, then dropped (its weights are ~25 MB)
        # torch.compile and CUDA graphs are torch's; OpenVINO compiles its own graph.
        numerics = dataclasses.replace(numerics, compile=False, cuda_graphs=False)
        super().__init__(model, numerics, version, input_size, threshold)

    @property
    def float_precision(self) -> str:
        """OpenVINO's precision for floating-point layers (all of them unless quantised)."""
        return "bf16" if self.numerics.dtype == torch.bfloat16 else "f32"

    @property
    def precision(self) -> str:
        """What the served graph computes in: int8, bf16 or f32."""
        return "int8" if self.quantized else self.float_precision

    @property
    def serving(self) -> str:
        return f"cpu-openvino-{self.precision}"

    def prepare(self, model: nn.Module) -> None:
        """Trace `model` (or load the INT8 graph) and compile it for this CPU."""
        disable_telemetry()
        import openvino as ov

        started = time.perf_counter()
        core = shared_core()
        if self._int8 is not None:
            weights = ov.Tensor(np.frombuffer(self._int8["weights"], dtype=np.uint8).copy())
            graph = core.read_model(model=self._int8["xml"], weights=weights)
            self._int8 = None
        else:
            graph = to_openvino(model, self.input_size)
        # Layers INT8 leaves in floating point run in bf16 where the CPU has it.
        config = {"INFERENCE_PRECISION_HINT": self.float_precision, "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        self.compiled = core.compile_model(graph, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()
        log.info(
            "OpenVINO %s graph for %s compiled in %.1f s",
            self.precision,
            self.version,
            time.perf_counter() - started,
        )

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw float32 logits (N, 2) for a uint8 (N,H,W,3) batch; the graph normalises."""
        x = np.ascontiguousarray(pixels.cpu().numpy())
        with self.lock:
            if self.request is None:
                raise RuntimeError(f"model {self.version} is closed")
            return torch.from_numpy(np.array(self.request.infer({0: x})[0], dtype=np.float32))

    def close(self) -> None:
        """Release the infer request and compiled graph, after a batch in the model finishes."""
        with self.lock:
            self.request = None
            self.compiled = None
        if self.dense is not None:
            self.dense.close()


def to_openvino(model: nn.Module, size: int) -> Any:
    """`model` as an OpenVINO graph: uint8 NHWC pixels of any batch size in, logits out."""
    disable_telemetry()
    import openvino as ov

    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        # The converter traces with torch.jit, which torch now marks deprecated: that
        # warning is about OpenVINO's internals, not something a user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        graph = ov.convert_model(model.eval().float().cpu(), example_input=example)
    graph.reshape([-1, 3, size, size])
    return pixels_in(graph)


def pixels_in(graph: Any) -> Any:
    """Make the graph take uint8 NHWC pixels and do ImageNet normalisation itself.

    OpenVINO fuses the conversion, mean/std and layout change into the first convolution's
    input, where torch-side preprocessing cost several passes over a float32 copy plus a
    transposing copy per batch.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(graph)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean([255.0 * m for m in IMAGENET_MEAN]).scale([255.0 * s for s in IMAGENET_STD])
    return ppp.build()

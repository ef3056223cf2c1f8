"""Command lines for the processes crackq starts: Celery workers and Flower."""

from __future__ import annotations

import ctypes.util
import glob
import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import dataclass

from worker.app import INFERENCE_QUEUE, TRAINING_QUEUE
from worker.settings import Settings

ALLOCATOR_LIBS = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}


@dataclass(frozen=True)
class Launch:
    """A process to start: argv plus the environment changes it needs."""

    argv: list[str]
    env: dict[str, str]


def find_allocator(choice: str) -> str | None:
    """The shared library to LD_PRELOAD for `choice` (auto: tcmalloc, then jemalloc)."""
    if choice == "system":
        return None
    names = ("tcmalloc", "jemalloc") if choice == "auto" else (choice,)
    for name in names:
        for lib in ALLOCATOR_LIBS[name]:
            for d in (
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/usr/lib",
                "/lib/x86_64-linux-gnu",
            ):
                if os.path.exists(os.path.join(d, lib)):
                    return os.path.join(d, lib)
        found = ctypes.util.find_library(name.removeprefix("lib"))
        if found:
            matches = glob.glob(f"/usr/lib*/**/{found}", recursive=True)
            if matches:
                return matches[0]
    if choice != "auto":
        raise RuntimeError(f"CRACKQ_ALLOCATOR={choice} but no {choice} library was found")
    return None


def serves_openvino(settings: Settings) -> bool:
    """Whether a CPU inference worker with these settings will run OpenVINO."""
    from models.openvino_backend import resolve_backend

    return resolve_backend(settings.backend, "cpu") == "openvino"


def celery_command() -> list[str]:
    """Celery's own CLI on our app, in this interpreter (workers and Flower start from it)."""
    return [sys.executable, "-m", "celery", "-A", "worker.app"]


def worker_launch(
    settings: Settings,
    queue: str,
    *,
    concurrency: int | None = None,
    hostname: str | None = None,
    loglevel: str | None = None,
    extra: list[str] | None = None,
    on_gpu: bool = False,
) -> Launch:
    """`celery worker` for one queue, always the threads pool and never a fork after CUDA.

    Inference runs in threads of one process (batches gather in-process beside one copy
    of the model; torch and PIL release the GIL); training runs one run at a time.
    """
    if queue not in (INFERENCE_QUEUE, TRAINING_QUEUE):
        raise ValueError(f"unknown queue {queue!r}: use {INFERENCE_QUEUE} or {TRAINING_QUEUE}")
    host = hostname or f"{queue}-{os.getpid()}@{socket.gethostname()}"
    argv = [*celery_command(), "worker", "-Q", queue, "-n", host, "-l"]
    argv += [loglevel or settings.log_level, "-E", "--without-gossip", "--without-mingle"]
    env: dict[str, str] = {}
    if queue == INFERENCE_QUEUE:
        n = concurrency or settings.worker_concurrency or 2
        # Late acks: every buffered message stays unacked until its row is committed,
        # so the prefetch window must hold the batches in flight plus the next ones.
        prefetch = max(1, (settings.batch_size * 4) // n)
        argv += ["-P", "threads", "-c", str(n), f"--prefetch-multiplier={prefetch}"]
    else:
        # One run at a time in a thread of this process: DataLoader workers may then fork
        # (a prefork child is daemonic and may not), and cancel/progress go through the DB.
        argv += ["-P", "threads", "-c", "1", "--prefetch-multiplier=1"]
    # glibc malloc halves torch's large-batch speed here, forward and backward alike
    # (training measured 13 img/s without tcmalloc, 19.6 with it).
    lib = find_allocator(settings.allocator)
    if lib and queue == INFERENCE_QUEUE and not on_gpu and serves_openvino(settings):
        # OpenVINO's CPU plugin aborts at compile time (free(): invalid pointer) under a
        # preloaded tcmalloc, and it keeps its own memory pools anyway.
        lib = None
    if lib:
        env["LD_PRELOAD"] = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), lib]))
    return Launch(argv + list(extra or []), env)


def flower_launch(
    settings: Settings, port: int | None = None, unauthenticated_api: bool = False
) -> Launch:
    """`celery flower` on the same broker; basic auth from settings, never silently open.

    Flower can revoke tasks and shut workers down: without basic auth it may listen on
    loopback only (ValueError otherwise).
    """
    if settings.flower_basic_auth is None and not is_loopback(settings.flower_address):
        raise ValueError(
            f"refusing to start Flower on {settings.flower_address} without authentication: "
            "set CRACKQ_FLOWER_BASIC_AUTH=user:password, or CRACKQ_FLOWER_ADDRESS=127.0.0.1"
        )
    argv = [
        *celery_command(),
        "flower",
        f"--port={port or settings.flower_port}",
        f"--address={settings.flower_address}",
    ]
    env: dict[str, str] = {}
    if settings.flower_basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    if unauthenticated_api:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    return Launch(argv, env)


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for any name or other address."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def gpu_indices(requested: str | None, device: str) -> list[str]:
    """GPUs to run one inference worker on each, found without initialising CUDA here.

    `--gpus` wins; CRACKQ_DEVICE=cuda:N means GPU N alone; else every visible GPU.
    """
    if device == "cpu":
        return []
    if requested:
        return [g.strip() for g in requested.split(",") if g.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = None if visible is None else [g.strip() for g in visible.split(",") if g.strip()]
    if device.startswith("cuda:"):  # N counts the devices this process sees
        n = int(device.removeprefix("cuda:"))
        if shown is None:
            return [str(n)]
        if n >= len(shown):
            raise ValueError(f"CRACKQ_DEVICE={device} but CUDA_VISIBLE_DEVICES={visible}")
        return [shown[n]]
    if shown is not None:
        return shown
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def pinned_to_gpu(launch: Launch, gpu: str, metrics_port: int | None = None) -> Launch:
    """`launch` confined to GPU `gpu`: the child sees that device alone, as `cuda`.

    CUDA numbers the visible devices from 0, so CRACKQ_DEVICE=cuda:3 with
    CUDA_VISIBLE_DEVICES=3 would name a device the child does not have.
    """
    env = {**launch.env, "CUDA_VISIBLE_DEVICES": gpu, "CRACKQ_DEVICE": "cuda"}
    if metrics_port:
        env["CRACKQ_METRICS_PORT"] = str(metrics_port)
    return Launch(launch.argv, env)

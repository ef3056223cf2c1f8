"""A fine-tuned model's INT8 graph, made by models.quantize in a child process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoints import cpu_state_dict, model_from_checkpoint
from models.datasets import Sample
from models.network import CLASSES
from models.quantize import draw_photos, int8_entry, why_no_int8

log = logging.getLogger(__name__)

TIMEOUT_S = 3600


def int8_in_child(
    model: nn.Module,
    size: int,
    threshold: float,
    train: Sequence[Sample],
    val: Sequence[Sample],
    check_photos: int = 500,
    timeout_s: float = TIMEOUT_S,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The INT8 checkpoint entry for `model` (None when there is none) and a report for its run.

    Calibrates on training photos and checks against fp32 on up to `check_photos`
    validation photos (models.quantize.draw_photos); the report says why there is no
    entry: NNCF or OpenVINO missing, too few photos, a failed check, or a failed child.

    The work runs in a child process without the preloaded allocator: OpenVINO's CPU
    plugin aborts under tcmalloc, which training workers preload, and a native crash
    there must not take the training run down with it. The child is killed after
    `timeout_s` (the run's remaining budget) and subprocess.TimeoutExpired raised.
    """
    unavailable = why_no_int8(len(val))
    if unavailable is not None:
        return None, unavailable
    calibration, check = draw_photos(train, val, check_photos)
    job = {
        "state_dict": cpu_state_dict(model),
        "classes": list(CLASSES),
        "size": size,
        "threshold": threshold,
        "calibration": calibration,
        "check": check,
    }
    # a private temporary folder: the child trusts the weights it finds there unhashed
    with tempfile.TemporaryDirectory(prefix="crackq-int8-") as tmp:
        torch.save(job, Path(tmp) / "job.pt")
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        argv = [sys.executable, "-m", "worker.int8_job", tmp]
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=max(timeout_s, 0.001)
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log.error(
                "INT8 quantisation failed (exit %d): %s", proc.returncode, proc.stderr[-3000:]
            )
            return None, {"skipped": f"quantisation failed (exit {proc.returncode}): {last}"}
        result = torch.load(Path(tmp) / "int8.pt", weights_only=True)
    return result["entry"], result["report"]


def _child(folder: Path) -> None:
    """The child's side of int8_in_child: job.pt in `folder`, int8.pt out."""
    job = torch.load(folder / "job.pt", weights_only=True)
    model = model_from_checkpoint(job)
    entry, report = int8_entry(
        model, job["calibration"], job["check"], job["size"], job["threshold"]
    )
    torch.save({"entry": entry, "report": report}, folder / "int8.pt")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="int8: %(message)s")
    _child(Path(sys.argv[1]))

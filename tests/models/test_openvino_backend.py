"""The OpenVINO backend: when it is chosen, and that it serves what torch serves."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from models import openvino_backend
from models.network import build_model
from models.numerics import resolve_numerics
from models.openvino_backend import BackendUnavailable, resolve_backend
from models.serving import Classifier


def test_auto_serves_openvino_on_the_cpu_only_when_installed(monkeypatch) -> None:
    monkeypatch.setattr(openvino_backend, "openvino_installed", lambda: True)
    assert resolve_backend("auto", "cpu") == "openvino"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    monkeypatch.setattr(openvino_backend, "openvino_installed", lambda: False)
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(BackendUnavailable, match=r"pip install 'crackq\[openvino\]'"):
        resolve_backend("openvino", "cpu")


def test_openvino_is_refused_on_a_gpu_and_unknown_backends_are_errors() -> None:
    with pytest.raises(BackendUnavailable, match="runs on the CPU"):
        resolve_backend("openvino", "cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("onnx", "cpu")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_openvino_fp32_matches_torch_with_a_checkpoint_threshold() -> None:
    torch.manual_seed(0)
    model = build_model().eval()
    fp32 = resolve_numerics("cpu", "fp32", channels_last=False)
    x = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    reference = Classifier(model, fp32, "v", input_size=64, threshold=0.3).predict(x)
    served = openvino_backend.OpenVINOClassifier(model, fp32, "v", input_size=64, threshold=0.3)
    probs = served.predict(x)
    assert probs.shape == (3, 2) and probs.dtype == torch.float32
    assert torch.allclose(probs, reference, atol=1e-4)
    # Any batch size: the graph's batch axis is dynamic.
    assert served.predict(torch.zeros(5, 64, 64, 3, dtype=torch.uint8)).shape == (5, 2)


PROBE = """
import socket, sys, time
def spy(host, *args, **kwargs):
    # A file, not a list: OpenVINO sends from a forked child process.
    with open(sys.argv[1], "a") as seen:
        seen.write(f"{host}\\n")
    raise OSError("tests send nothing off this machine")
socket.getaddrinfo = spy
from models.network import build_model
from models.numerics import resolve_numerics
from models.openvino_backend import OpenVINOClassifier
numerics = resolve_numerics("cpu", "fp32", channels_last=False)
OpenVINOClassifier(build_model(), numerics, "v", input_size=32)
import importlib.util, numpy
if importlib.util.find_spec("nncf"):  # NNCF reports usage through the same package
    from models.quantize import quantize
    quantize(build_model(), [numpy.zeros((32, 32, 3), numpy.uint8)] * 2, 32)
time.sleep(1.5)  # the sending child is started in the background
"""


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
@pytest.mark.slow
def test_converting_and_quantising_a_model_sends_no_telemetry(tmp_path) -> None:
    # A fresh process: OpenVINO reports on first import, which this test process may
    # have done already. CI=true would silence OpenVINO by itself, so it is removed.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(tmp_path)  # no opt-out file from an earlier run
    seen = tmp_path / "lookups.txt"
    seen.touch()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(seen)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert seen.read_text() == ""

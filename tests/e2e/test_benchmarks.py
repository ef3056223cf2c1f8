"""`python -m benchmarks.run` from the command line: JSON lines a user can rerun and compare.

The GPU figures (model-only with compile + CUDA graphs, the in-process pipeline at batch
256) come from the same code paths this runs on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from harness.procs import ROOT
from tests.conftest import DATA_DIR, REDIS_DB

pytestmark = pytest.mark.slow


# Run in a child: tests import the harness, never the benchmarks they check.
CONFIGURATIONS = """
import json
from benchmarks.model_speed import configurations
cpu = configurations("torch", "cpu")
graph = {"xml": "", "weights": b""}  # a checkpoint's INT8 graph adds the INT8 config
print(json.dumps({
    "torch": list(cpu),
    "fast": cpu["fast"][1].name,
    "openvino": list(configurations("openvino", "cpu")),
    "openvino_int8": list(configurations("openvino", "cpu", graph)),
}))
"""


def test_model_bench_measures_compiled_graphs_on_gpus_only() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CONFIGURATIONS], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["torch"] == ["fp32_nchw", "fast"]
    assert found["fast"] == "cpu-bfloat16-channels_last"
    assert found["openvino"] == ["openvino_bf16"]
    assert found["openvino_int8"] == ["openvino_bf16", "openvino_int8"]


def test_inprocess_decode_and_bulk_write_benchmarks_print_json_lines() -> None:
    env = dict(os.environ, CRACKQ_BENCH_REDIS_DB=str(REDIS_DB), CRACKQ_BENCH_DATA=str(DATA_DIR))
    argv = [sys.executable, "-m", "benchmarks.run", "--only", "inprocess,decode,bulk_write"]
    argv += ["--n", "48"]
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {d["bench"]: d for d in map(json.loads, out.stdout.splitlines())}
    assert set(lines) == {"inprocess", "decode", "bulk_write", "summary"}
    decode = lines["decode"]
    assert decode["threads_1"]["images_per_s"] > 0 and decode["threads_1"]["failed"] == 0
    inproc = lines["inprocess"]
    assert inproc["rows_written"] == 48 and inproc["images_per_s"] > 0
    assert inproc["device"] == "cpu" and inproc["batches_in_flight"] == 2
    if inproc["backend"] == "OpenVINOClassifier" and importlib.util.find_spec("nncf"):
        assert inproc["numerics"] == "cpu-openvino-int8"  # the benchmark's INT8 checkpoint
    assert lines["bulk_write"]["rows_per_s"] > 0
    summary = lines["summary"]
    assert summary["inputs"]["inprocess_images_per_s"] == inproc["images_per_s"]
    assert summary["e2e_over_model_fastest"] is None  # not measured in this run


def test_profiled_e2e_splits_the_workers_cpu_by_phase() -> None:
    """`--profile`: py-spy samples the real worker; every photo's path shows up as phases."""
    env = dict(os.environ, CRACKQ_BENCH_REDIS_DB=str(REDIS_DB), CRACKQ_BENCH_DATA=str(DATA_DIR))
    # The broker's bookkeeping is ~0.1-0.3 CPU ms a photo: at 100 Hz over 96 photos that is
    # ~3 samples, and CI once drew none. 192 photos at 500 Hz expect ~10-30 (P(0) < 1e-4).
    argv = [sys.executable, "-m", "benchmarks.run", "--only", "e2e", "--n", "192"]
    argv += ["--profile", "500"]
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {d["bench"]: d for d in map(json.loads, out.stdout.splitlines())}
    assert lines["e2e"]["succeeded"] == 192
    phases = lines["phases"]
    assert phases["samples"] > 0 and phases["rate_hz"] == 500
    # the model, a photo's read/decode and the broker's bookkeeping are found in the stacks
    found = set(phases["sampled_ms_per_image"])
    assert "model" in found
    assert found & {"read", "decode", "resize"} and found & {"unacked", "ack", "events"}
    scaled = phases["cpu_ms_per_image"]
    worker_cpu = lines["e2e"]["cpu_ms_per_image"]["worker"]
    assert abs(sum(scaled.values()) - worker_cpu) < 0.05 * worker_cpu + 0.1
    assert 0 < phases["cpu_outside_model_ms_per_image"] < worker_cpu

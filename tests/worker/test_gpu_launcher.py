"""The per-GPU launcher on a CPU host: which GPUs, what each child sees, signals relayed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.procs import ROOT, wait_until
from worker.launch import Launch, gpu_indices, pinned_to_gpu
from worker.supervise import exit_code


def test_cuda_n_means_that_gpu_alone_counted_among_the_visible(monkeypatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_indices(None, "cuda:1") == ["1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_indices(None, "cuda:1") == ["3"]  # the second device this process sees
    assert gpu_indices(None, "cuda") == ["2", "3"]
    assert gpu_indices("0,1", "cuda:1") == ["0", "1"]  # --gpus wins
    assert gpu_indices(None, "cpu") == []
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=2,3"):
        gpu_indices(None, "cuda:5")


def test_a_child_sees_its_gpu_as_cuda_and_gets_a_metrics_port_of_its_own() -> None:
    base = Launch(["celery", "worker"], {"LD_PRELOAD": "x"})
    child = pinned_to_gpu(base, "3", 9810)
    assert child.env == {
        "LD_PRELOAD": "x",
        "CUDA_VISIBLE_DEVICES": "3",
        "CRACKQ_DEVICE": "cuda",  # not cuda:3: the child sees one device, numbered 0
        "CRACKQ_METRICS_PORT": "9810",
    }
    assert "CRACKQ_METRICS_PORT" not in pinned_to_gpu(base, "0", 0).env


CHILD = textwrap.dedent(
    """
    import signal, sys, time
    out = sys.argv[1]
    def stop(signum, frame):
        open(out, "w").write(signal.Signals(signum).name)
        sys.exit(int(sys.argv[2]))
    signal.signal(signal.SIGTERM, stop)
    open(out + ".up", "w").write("up")
    time.sleep(60)
    """
)
PARENT = textwrap.dedent(
    """
    import sys
    from worker.launch import Launch
    from worker.supervise import supervise
    child = [sys.executable, "-c", sys.argv[1]]
    sys.exit(supervise([Launch([*child, sys.argv[2], "0"], {}), Launch([*child, sys.argv[3], "3"], {})]))
    """
)


def test_sigterm_to_the_launcher_reaches_every_worker_and_the_worst_exit_is_kept(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(a), str(b)], cwd=ROOT)
    try:
        assert wait_until(lambda: (tmp_path / "a.up").exists() and (tmp_path / "b.up").exists(), 30)
        t0 = time.monotonic()
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 3  # one worker exited 3: the launcher says so
        assert a.read_text() == "SIGTERM" and b.read_text() == "SIGTERM"
        assert time.monotonic() - t0 < 10  # not the children's 60 s sleep
    finally:
        if parent.poll() is None:
            parent.kill()


def test_exit_codes_read_as_a_shell_reads_them() -> None:
    assert exit_code(0) == 0 and exit_code(3) == 3
    assert exit_code(-signal.SIGKILL) == 137

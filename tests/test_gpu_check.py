"""benchmarks/gpu_check.sh without a GPU: its dry run, and the summary its steps' output makes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.procs import ROOT

SCRIPT = "benchmarks/gpu_check.sh"
STEPS = ["install", "gpu", "parity", "compiled", "speed", "queue", "train", "hot_switch"]
STEPS += ["multi_gpu"]
GPU_HOST_ONLY = {"nvidia-smi"}  # named by the multi-GPU step; absent on this host


def summary(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python -m benchmarks.gpu_summary ARGS` in a child (tests never import benchmarks)."""
    argv = [sys.executable, "-m", "benchmarks.gpu_summary", *map(str, args)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def dry_run(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", SCRIPT, "--dry-run", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def commands(text: str) -> dict[str, list[list[str]]]:
    """step name -> the argv of each `$ ...` line printed under it."""
    found: dict[str, list[list[str]]] = {}
    step = ""
    for line in text.splitlines():
        if m := re.match(r"\[\d+/\d+\] (\w+): ", line):
            step = m.group(1)
            found[step] = []
        elif line.strip().startswith("$ "):
            found[step].append(shlex.split(line.strip()[2:].split(" > ")[0].rstrip("& ")))
    return found


def program_and_files(argv: list[str]) -> tuple[str, list[str]]:
    """The program (after VAR=value assignments) and the repository files its arguments name."""
    words = list(argv)
    while "=" in words[0] and not words[0].startswith(("/", ".")):
        words.pop(0)
    files = [w for w in words[1:] if w.endswith(".py") or w.startswith(("tests/", "benchmarks/"))]
    if "-m" in words:
        module = words[words.index("-m") + 1]
        if module != "pytest":
            files.append(module.replace(".", "/") + ".py")
    return words[0], [f for f in files if not f.startswith("benchmarks/out/")]


@pytest.mark.slow
def test_dry_run_lists_every_step_and_names_only_files_that_exist(tmp_path: Path) -> None:
    out = dry_run(tmp_path / "out")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.rstrip().endswith("dry run ok")
    headers = re.findall(r"^\[(\d+)/(\d+)\] (\w+):", out.stdout, re.MULTILINE)
    assert [name for _, _, name in headers] == STEPS
    assert all(
        int(i) == n + 1 and int(total) == len(STEPS) for n, (i, total, _) in enumerate(headers)
    )
    found = commands(out.stdout)
    for step, lines in found.items():
        assert lines or step == "hot_switch", f"{step} names no command"
        for argv in lines:
            program, files = program_and_files(argv)
            assert (ROOT / program).exists() or shutil.which(program) or program in GPU_HOST_ONLY
            for f in files:
                assert (ROOT / f).is_file(), f"{step}: {f} does not exist"
    assert "skipped: " in out.stdout.split("[8/9] hot_switch:")[1].split("[9/9]")[0]
    parity = found["parity"][0]
    assert "tests/models/test_numerics_parity.py" in parity and parity[-2:] == ["-k", "cuda"]
    assert "tests/models/test_compiled.py" in found["compiled"][0]
    assert (
        "CRACKQ_DEVICE=cuda" in found["speed"][0] and "model,decode,inprocess" in found["speed"][0]
    )
    assert " ".join(found["queue"][0]).endswith("-m benchmarks.run --only e2e --n 5000")
    train = " ".join(found["train"][0])
    assert f"--train 4000 --epochs 1 --precision bf16 --workers {os.cpu_count()}" in train
    assert "--device cuda" in train and f"--out {tmp_path / 'out'}/train" in train
    assert not (tmp_path / "out").exists(), "a dry run wrote output"


def test_dry_run_fails_without_the_virtual_environment(tmp_path: Path) -> None:
    out = dry_run(tmp_path / "out", VENV=str(tmp_path / "no-venv"))
    assert out.returncode == 1
    assert "no-venv/bin/python missing" in out.stdout
    assert "dry run failed" in out.stdout and "dry run ok" not in out.stdout


def test_help_and_an_unknown_argument() -> None:
    shown = subprocess.run(["bash", SCRIPT, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "--dry-run" in shown.stdout
    assert all(step in shown.stdout for step in STEPS)
    wrong = subprocess.run(["bash", SCRIPT, "--gpu"], cwd=ROOT, capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown argument: --gpu" in wrong.stderr


def write(path: Path, *lines: str | dict[str, object]) -> None:
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))


def test_summary_table_from_sample_output_with_a_failed_step(tmp_path: Path) -> None:
    write(tmp_path / "gpu.out", {"bench": "gpu", "cuda": True, "devices": ["NVIDIA H200"],
                                 "launcher_gpus": "0"})  # fmt: skip
    write(tmp_path / "parity.out", "...", "3 passed, 4 deselected in 95.20s")
    write(tmp_path / "compiled.out", "F...", "1 failed, 4 passed in 80.00s")
    host = {"cpus": 16}
    write(
        tmp_path / "speed.out",
        {"bench": "model", "fastest": "fast_compiled", "fastest_images_per_s": 9812.5, "host": host},
        {"bench": "decode", "images": 2000, "threads_1": {"images_per_s": 410.0},
         "threads_16": {"images_per_s": 5230.1}, "host": host},
        {"bench": "inprocess", "images_per_s": 4100.2, "batch": 256, "host": host},
        {"bench": "summary", "inprocess_over_model_fastest": 0.418},
    )  # fmt: skip
    write(tmp_path / "train.out", {"benchmark": "train_quick", "status": "ok",
                                   "train_images_per_s": 1502.3, "accuracy": 0.981})  # fmt: skip
    for step, rc in (("gpu", 0), ("parity", 0), ("compiled", 1), ("speed", 0), ("train", 0)):
        assert summary("record", tmp_path, step, "--rc", rc, "--seconds", 12).returncode == 0
    assert summary("record", tmp_path, "hot_switch", "--skipped", "no harness").returncode == 0

    shown = summary("table", tmp_path)
    assert shown.returncode == 1, "a failed step must fail the check"
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()[2:-1]}
    assert list(rows) == ["gpu", "parity", "compiled", "speed", "train", "hot_switch"]
    assert re.search(r"gpu\s+ok\s+12\s+1 x NVIDIA H200; launcher GPUs 0$", rows["gpu"])
    assert rows["parity"].split()[1] == "ok" and "3 passed, 4 deselected" in rows["parity"]
    assert rows["compiled"].split()[1] == "failed" and "exit code 1" in rows["compiled"]
    assert "model 9812.5 img/s (fast_compiled)" in rows["speed"]
    assert "decode 5230.1 photos/s" in rows["speed"]
    assert "inprocess 4100.2 img/s (batch 256)" in rows["speed"]
    assert "train 1502.3 img/s, accuracy 0.981" in rows["train"]
    assert rows["hot_switch"].split()[1] == "skipped" and "no harness" in rows["hot_switch"]
    assert shown.stdout.splitlines()[-1].startswith("6 steps, 1 failed: compiled;")
    records = [json.loads(x) for x in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "ok", "ok", "skipped"]


def test_a_step_that_exited_0_but_proved_nothing_fails(tmp_path: Path) -> None:
    write(tmp_path / "parity.out", "sss", "3 skipped, 4 deselected in 30.00s")
    write(tmp_path / "queue.out", {"bench": "e2e", "images": 5000, "images_per_s": 20.0,
                                   "timed_out": True})  # fmt: skip
    write(tmp_path / "train.out", {"benchmark": "train_quick", "status": "cancelled",
                                   "reason": "time limit"})  # fmt: skip
    for step in ("parity", "queue", "train"):
        summary("record", tmp_path, step, "--rc", 0, "--seconds", 5)
    summary("record", tmp_path, "speed", "--rc", 124, "--seconds", 200, "--limit", 200)
    summary("record", tmp_path, "multi_gpu", "--not-run", "the 480 s budget is spent")
    records = {r["step"]: r for r in map(json.loads, (tmp_path / "steps.jsonl").open())}
    assert {r["status"] for r in records.values()} == {"failed"}
    assert records["parity"]["reason"].startswith("3 skipped")
    assert records["queue"]["reason"] == "e2e timed out"
    assert records["train"]["reason"] == "training cancelled: time limit"
    assert records["speed"]["reason"] == "timed out after 200 s"
    assert records["multi_gpu"]["reason"] == "not run: the 480 s budget is spent"


@pytest.mark.parametrize(("gpu1_util", "status"), [("0", "failed"), ("63", "ok")])
def test_multi_gpu_needs_every_gpu_busy(tmp_path: Path, gpu1_util: str, status: str) -> None:
    write(tmp_path / "gpu.out", {"bench": "gpu", "cuda": True, "devices": ["H200", "H200"],
                                 "launcher_gpus": "0,1"})  # fmt: skip
    write(tmp_path / "multi_gpu.out", {"bench": "e2e", "images": 5000, "images_per_s": 3100.0})
    samples = [f"0, {u}, 4100" for u in (0, 71, 80, 75)]
    samples += [f"1, {u}, 4050" for u in ("0", gpu1_util, gpu1_util, "0")]
    write(tmp_path / "multi_gpu.smi.csv", *samples)
    summary("record", tmp_path, "multi_gpu", "--rc", 0, "--seconds", 90)
    line = json.loads((tmp_path / "steps.jsonl").read_text())
    assert line["status"] == status, line
    busy = "2/2" if status == "ok" else "1/2"
    assert line["figure"].startswith(f"{busy} GPUs busy (GPU 0 80% 4100 MiB; GPU 1 ")
    assert "e2e 3100.0 img/s over 5000 photos" in line["figure"]


@pytest.mark.slow
def test_check_refuses_a_flag_the_suite_does_not_take() -> None:
    good = summary("check", "--only e2e --n 5000", "--suite train --train 4000 --epochs 1")
    assert good.returncode == 0 and "benchmark arguments ok" in good.stdout, good.stderr
    bad = summary("check", "--only e2e --n 5000", "--suite train --train 4000 --photos 9")
    assert bad.returncode == 1
    assert "does not take: --suite train --train 4000 --photos 9" in bad.stdout
    assert "unrecognized arguments: --photos 9" in bad.stderr

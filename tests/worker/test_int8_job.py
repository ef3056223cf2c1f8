"""The INT8 child process: not started in vain, its failures recorded (its work: test_numerics_parity)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from models.network import build_model
from models.quantize import MIN_CHECK_PHOTOS
from worker.int8_job import int8_in_child

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nncf") is None or importlib.util.find_spec("openvino") is None,
    reason="needs crackq[openvino] (openvino and nncf)",
)


def test_too_few_validation_photos_give_no_graph_and_say_why(tmp_path: Path) -> None:
    val = [(str(tmp_path / f"{i}.jpg"), i % 2) for i in range(MIN_CHECK_PHOTOS - 1)]
    entry, report = int8_in_child(build_model(), 224, 0.5, val, val)
    assert entry is None
    assert report == {
        "skipped": f"{MIN_CHECK_PHOTOS - 1} validation photos; the check needs at least "
        f"{MIN_CHECK_PHOTOS}"
    }


def test_a_failing_child_is_a_recorded_skip_and_gets_no_preloaded_allocator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in interpreter: records the environment it was given, then dies
    seen = tmp_path / "env.txt"
    child = tmp_path / "python"
    child.write_text(f'#!/bin/sh\nenv > "{seen}"\necho "native crash" >&2\nexit 134\n')
    child.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(child))
    monkeypatch.setenv("LD_PRELOAD", str(tmp_path / "no-such-allocator.so"))
    val = [(str(tmp_path / f"{i}.jpg"), i % 2) for i in range(MIN_CHECK_PHOTOS)]
    entry, report = int8_in_child(build_model(), 224, 0.5, val, val)
    assert entry is None
    assert report == {"skipped": "quantisation failed (exit 134): native crash"}
    assert seen.is_file() and "LD_PRELOAD" not in seen.read_text()

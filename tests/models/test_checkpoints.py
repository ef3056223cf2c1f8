"""Checkpoints are atomic, verified by sha256 and loaded with weights_only=True."""

from __future__ import annotations

import pytest
import torch

from models.checkpoints import (
    CheckpointError,
    expected_sha256,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from models.classifier import build_model


def test_round_trip_with_metadata(tmp_path) -> None:
    model = build_model()
    sha = save_checkpoint(tmp_path / "m.pt", model, version="v1", recipe={"epochs": 1})
    assert expected_sha256(tmp_path / "m.pt") == sha
    payload = load_checkpoint(tmp_path / "m.pt", sha)
    assert payload["version"] == "v1" and payload["recipe"] == {"epochs": 1}
    restored = model_from_checkpoint(payload)
    assert torch.equal(restored.fc.weight, model.fc.weight)
    assert not list(tmp_path.glob(".*.tmp"))


def test_changed_bytes_are_refused(tmp_path) -> None:
    sha = save_checkpoint(tmp_path / "m.pt", build_model())
    data = bytearray((tmp_path / "m.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "m.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="changed or corrupted"):
        load_checkpoint(tmp_path / "m.pt", sha)


def test_unknown_checksum_and_foreign_files_are_refused(tmp_path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no known sha256"):
        load_checkpoint(tmp_path / "other.pt", None)
    from models.checkpoints import sha256_file

    with pytest.raises(CheckpointError, match="not a crackq checkpoint"):
        load_checkpoint(tmp_path / "other.pt", sha256_file(tmp_path / "other.pt"))


def test_pickled_code_is_never_executed(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "crackq-checkpoint/1", "x": Evil()}, tmp_path / "evil.pt")
    from models.checkpoints import sha256_file

    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "evil.pt", sha256_file(tmp_path / "evil.pt"))

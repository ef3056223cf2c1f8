"""Checkpoints are atomic, verified by sha256 and loaded with weights_only=True."""

from __future__ import annotations

import pytest
import torch

from models.checkpoints import (
    CheckpointError,
    ServingConfig,
    expected_sha256,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    serving_config,
)
from models.network import build_model


def test_round_trip_with_metadata(tmp_path) -> None:
    model = build_model()
    sha = save_checkpoint(tmp_path / "m.pt", model, version="v1", recipe={"epochs": 1})
    assert expected_sha256(tmp_path / "m.pt") == sha
    payload = load_checkpoint(tmp_path / "m.pt", sha)
    assert payload["version"] == "v1" and payload["recipe"] == {"epochs": 1}
    restored = model_from_checkpoint(payload)
    assert torch.equal(restored.fc.weight, model.fc.weight)
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_serving_config_travels_inside_the_checkpoint(tmp_path) -> None:
    meta = {"recipe": {"image_size": 96}, "threshold": 0.3}
    sha = save_checkpoint(tmp_path / "m.pt", build_model(), version="v1", **meta)
    payload = load_checkpoint(tmp_path / "m.pt", sha)
    stored = payload["serving"]
    assert stored["image_size"] == 96 and stored["threshold"] == 0.3
    assert stored["classes"] == ["no_crack", "crack"] and len(stored["mean"]) == 3
    assert serving_config(payload) == ServingConfig(image_size=96, threshold=0.3)
    del payload["serving"]  # a checkpoint written before the config was stored
    assert serving_config(payload) == ServingConfig(image_size=96, threshold=0.3)
    assert serving_config({}) == ServingConfig()
    with pytest.raises(CheckpointError, match="normalisation"):
        serving_config({"serving": {**stored, "mean": [0.5, 0.5, 0.5]}})


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


@pytest.mark.parametrize("text", ["", "\n  \n", "not-a-digest  m.pt\n", "abc123  m.pt\n"])
def test_an_empty_or_malformed_sidecar_is_a_clear_error_naming_it(tmp_path, text) -> None:
    save_checkpoint(tmp_path / "m.pt", build_model())
    (tmp_path / "m.pt.sha256").write_text(text)
    with pytest.raises(CheckpointError, match=r"m\.pt\.sha256.*sha256"):
        expected_sha256(tmp_path / "m.pt")


def test_the_bytes_verified_are_the_bytes_loaded(tmp_path, monkeypatch) -> None:
    """A file swapped between hashing and loading must not be loaded (read once, no TOCTOU)."""
    import hashlib
    import os

    good, evil = tmp_path / "m.pt", tmp_path / "evil.pt"
    sha = save_checkpoint(good, build_model(), version="good")
    save_checkpoint(evil, build_model(), version="evil")
    real_sha256 = hashlib.sha256

    class SwapAfterHashing:
        """hashlib.sha256 that replaces the checkpoint on disk once its digest is taken."""

        def __init__(self, data: bytes = b"") -> None:
            self._digest = real_sha256(data)

        def update(self, data: bytes) -> None:
            self._digest.update(data)

        def hexdigest(self) -> str:
            if evil.exists():
                os.replace(evil, good)
            return self._digest.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", SwapAfterHashing)
    payload = load_checkpoint(good, sha)
    assert payload["version"] == "good"

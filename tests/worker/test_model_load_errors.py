"""A promoted version that will not load: said once, recorded in the registry, never retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import registry
from models.checkpoints import save_checkpoint
from models.network import build_model
from models.numerics import resolve_numerics
from models.serving import Classifier
from worker.modelstore import (
    ModelHolder,
    ModelSource,
    build_classifier,
    choose_source,
    load_error_recorder,
)

pytestmark = pytest.mark.usefixtures("clean_tables")
NUMERICS = resolve_numerics("cpu", "fp32", False)


def promote_new(sessions, tmp_path: Path, version: str, tamper: bool = False) -> None:
    path = tmp_path / f"{version}.pt"
    sha = save_checkpoint(path, build_model(), version=version, recipe={"image_size": 64})
    if tamper:
        with open(path, "r+b") as fh:
            fh.seek(1000)
            fh.write(b"\x00\x01\x02\x03")
    with sessions() as s, s.begin():
        registry.register(
            s, version=version, checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
        )
        registry.promote(s, version, by="test")


def test_a_bad_version_is_reported_once_recorded_and_not_reloaded(
    sessions, tmp_path, caplog
) -> None:
    promote_new(sessions, tmp_path, "v1")
    loads: list[str] = []

    def load(source: ModelSource) -> Classifier:
        loads.append(source.version)  # each load reads, hashes and converts the checkpoint
        return build_classifier(source, NUMERICS, "never")

    h = ModelHolder(
        load, lambda: choose_source(None, sessions), load_error_recorder(sessions, "inf-1:7")
    )
    promote_new(sessions, tmp_path, "v2", tamper=True)
    with caplog.at_level("INFO", logger="worker.modelstore"):
        assert [h.check_once() for _ in range(4)] == [False] * 4
    assert loads == ["v1", "v2"], "the bad version was loaded again on a later poll"
    assert h.current().version == "v1"
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "could not load model v2" in errors[0].getMessage()
    with sessions() as s:
        assert "v2" in (registry.get(s, "v2").load_error or "")
        failed = [e for e in registry.history(s) if e.action == "load_failed"]
        assert [(e.version, e.actor) for e in failed] == [("v2", "inf-1:7")]
        # operators roll back to the good version; the worker already serves it
        assert registry.rollback(s, by="ops", reason="v2 will not load").version == "v1"
        s.commit()
    assert h.check_once() is False and h.current().version == "v1"
    promote_new(sessions, tmp_path, "v3")  # another version is tried at once
    assert h.check_once() is True and h.current().version == "v3"
    assert loads == ["v1", "v2", "v3"]

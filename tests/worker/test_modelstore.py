"""Model selection and hot reload inside one process."""

from __future__ import annotations

import pytest

from db import registry
from models.checkpoints import save_checkpoint
from models.network import build_model
from models.numerics import resolve_numerics
from worker.modelstore import RANDOM_INIT_VERSION, ModelHolder, build_classifier, choose_source

pytestmark = pytest.mark.usefixtures("clean_tables")
NUMERICS = resolve_numerics("cpu", "fp32", False)


def holder(sessions) -> ModelHolder:
    return ModelHolder(
        lambda src: build_classifier(src, NUMERICS, "never"), lambda: choose_source(None, sessions)
    )


def register(sessions, tmp_path, version: str, promote: bool = True) -> str:
    path = tmp_path / f"{version}.pt"
    sha = save_checkpoint(path, build_model(), version=version, recipe={"image_size": 96})
    with sessions() as s, s.begin():
        registry.register(
            s, version=version, checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
        )
        if promote:
            registry.promote(s, version)
    return str(path)


def test_untrained_until_a_version_is_promoted_then_switches(sessions, tmp_path) -> None:
    h = holder(sessions)
    assert h.current().version == RANDOM_INIT_VERSION
    assert h.check_once() is False
    register(sessions, tmp_path, "v1")
    assert h.check_once() is True
    assert h.current().version == "v1" and h.current().input_size == 96


def test_tampered_checkpoint_is_refused_and_the_old_model_keeps_serving(sessions, tmp_path) -> None:
    register(sessions, tmp_path, "v1")
    h = holder(sessions)
    path = register(sessions, tmp_path, "v2")
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    assert h.check_once() is False
    assert h.current().version == "v1"


def test_a_registry_outage_is_one_warning_not_a_traceback_per_poll(sessions, caplog) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    # A real refused connection: nothing listens on port 1.
    down = sessionmaker(create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none"))
    up = True
    h = ModelHolder(
        lambda src: build_classifier(src, NUMERICS, "never"),
        lambda: choose_source(None, sessions if up else down),
    )
    up = False
    with caplog.at_level("INFO", logger="worker.modelstore"):
        for _ in range(3):
            assert h.check_once() is False
        up = True
        assert h.check_once() is False
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "registry unreachable" in m]) == 1, messages
    assert not any(r.exc_info for r in caplog.records)
    assert messages[-1] == "model registry reachable again"
    assert h.current().version == RANDOM_INIT_VERSION


def test_an_explicit_checkpoint_with_an_empty_sidecar_is_refused_by_name(tmp_path) -> None:
    from models.checkpoints import CheckpointError

    path = tmp_path / "mine.pt"
    save_checkpoint(path, build_model(), version="mine")
    (tmp_path / "mine.pt.sha256").write_text("")  # e.g. a failed `sha256sum > mine.pt.sha256`
    with pytest.raises(CheckpointError, match=r"mine\.pt\.sha256"):
        choose_source(path, None)

"""Shadow scoring as plain functions: real PostgreSQL, real photo files, two colour models.

The live model calls red photos cracks, the shadow model green ones (harness.colour_model),
so every photo's live and shadow answers are known.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from sqlalchemy import select

from db import registry, shadow
from db.tables import Result, ShadowScore
from harness import images
from harness.colour_model import COLOURS, colour_checkpoint, colour_model
from models.formats import CAMERA_FORMATS
from models.numerics import resolve_numerics
from models.serving import Classifier
from worker import metrics
from worker.forward import Forward
from worker.mapping import map_photo
from worker.modelstore import build_classifier
from worker.pipeline import Item, MapPolicy, PipelineConfig, classify
from worker.shadow import Shadow, ShadowHolder, sampled, shadow_choice
from worker.sources import SourceLimits

pytestmark = pytest.mark.usefixtures("clean_tables")
FP32 = resolve_numerics("cpu", "fp32", False)
SIZE = 64


@pytest.fixture(scope="module")
def red() -> Classifier:
    return Classifier(colour_model("red"), FP32, "red", SIZE)


@pytest.fixture(scope="module")
def green() -> Classifier:
    return Classifier(colour_model("green"), FP32, "green", SIZE)


class Broken(Classifier):
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shadow forward exploded")


@pytest.fixture
def photos(tmp_path: Path) -> tuple[PipelineConfig, list[Item]]:
    """One photo of each colour (and one that is not an image) under an allowed root."""
    items = []
    for name, rgb in COLOURS.items():
        (tmp_path / f"{name}.jpg").write_bytes(images.jpeg(SIZE, SIZE, color=rgb))
        items.append(Item(name, str(tmp_path / f"{name}.jpg")))
    (tmp_path / "junk.jpg").write_bytes(images.not_an_image())
    items.append(Item("junk", str(tmp_path / "junk.jpg")))
    limits = SourceLimits(allowed_roots=(tmp_path,), max_bytes=10_000_000, http_timeout_s=5)
    config = PipelineConfig(limits, 50_000_000, CAMERA_FORMATS, "shadow-host", MapPolicy())
    return config, items


def _register(sessions, *versions: str) -> None:
    with sessions() as s, s.begin():
        for v in versions:
            registry.register(
                s, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r50"
            )


def _rows(sessions, table, **where):
    with sessions() as s:
        found = s.scalars(select(table).filter_by(**where))
        return {r.request_id: r for r in found}


def _failures(stage: str) -> float:
    return metrics.SHADOW_FAILURES.labels(stage)._value.get()


def test_sampling_is_a_stable_share_of_request_ids() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    picked = [i for i in ids if sampled(i, 0.3)]
    assert 0.28 < len(picked) / len(ids) < 0.32
    assert picked == [i for i in ids if sampled(i, 0.3)]  # the same photos every time
    assert set(picked) <= {i for i in ids if sampled(i, 0.6)}  # a larger share adds photos
    assert all(sampled(i, 1.0) for i in ids[:100])


def test_a_shadow_scores_the_batch_and_leaves_its_rows_alone(sessions, red, green, photos) -> None:
    config, items = photos
    _register(sessions, "green")
    forward = Forward(8, 2)
    try:
        classify(items, red, sessions, config, forward=forward, shadow=Shadow(green, 1.0))
    finally:
        forward.close(10)
    live = _rows(sessions, Result)
    assert {k: r.label for k, r in live.items() if r.status == "succeeded"} == {
        "red": "crack", "yellow": "crack", "green": "no_crack", "grey": "no_crack",
    }  # fmt: skip
    assert live["junk"].status == "failed" and {r.model_version for r in live.values()} == {
        "red",
        None,
    }
    scores = _rows(sessions, ShadowScore, version="green")
    assert {k: s.label for k, s in scores.items()} == {
        "red": "no_crack", "yellow": "crack", "green": "crack", "grey": "no_crack",
    }  # fmt: skip
    assert all(s.mode == "patch" and s.tiles is None for s in scores.values())
    assert scores["green"].crack_probability > 0.9 > live["green"].crack_probability


def test_a_failing_shadow_costs_no_live_row(sessions, red, photos) -> None:
    config, items = photos
    _register(sessions, "broken")
    before = _failures("forward"), _failures("write")
    broken = Broken(colour_model("green"), FP32, "broken", SIZE)
    classify(items[:2], red, sessions, config, shadow=Shadow(broken, 1.0))
    # a version missing from the registry cannot be written (foreign key): also counted
    unregistered = Classifier(colour_model("green"), FP32, "unregistered", SIZE)
    classify(items[2:], red, sessions, config, shadow=Shadow(unregistered, 1.0))
    assert (_failures("forward"), _failures("write")) == (before[0] + 1, before[1] + 1)
    live = _rows(sessions, Result)
    assert len(live) == len(items) and all(r.status != "queued" for r in live.values())
    assert _rows(sessions, ShadowScore) == {}


def test_a_mapped_photo_is_mapped_again_by_the_shadow(sessions, red, green, tmp_path) -> None:
    img = Image.new("RGB", (256, 256), COLOURS["grey"])
    img.paste(COLOURS["green"], (0, 0, 128, 256))  # the left half: 8 of 16 tiles
    buf = io.BytesIO()
    img.save(buf, "PNG")
    (tmp_path / "big.png").write_bytes(buf.getvalue())
    limits = SourceLimits(allowed_roots=(tmp_path,), max_bytes=10_000_000, http_timeout_s=5)
    policy = MapPolicy(tile=SIZE, min_region_tiles=2, batch=8)
    config = PipelineConfig(limits, 50_000_000, CAMERA_FORMATS, "shadow-host", policy)
    _register(sessions, "green")
    done = classify([Item("big", str(tmp_path / "big.png"), mode="map")], red, sessions, config)
    row = map_photo(done.to_map[0], red, sessions, config, None, Shadow(green, 1.0))
    assert (row["label"], row["crack_tiles"]) == ("no_crack", 0)
    score = _rows(sessions, ShadowScore)["big"]
    assert (score.mode, score.label, score.tiles, score.crack_tiles) == ("map", "crack", 16, 8)
    assert _rows(sessions, Result)["big"].label == "no_crack"


def test_the_holder_follows_the_setting_and_gives_up_on_a_bad_version(sessions, tmp_path) -> None:
    good = colour_checkpoint(tmp_path, "green", "green-v1")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with sessions() as s, s.begin():
        for v, path, sha in (("green-v1", tmp_path / "green-v1.pt", good), ("bad", bad, "0" * 64)):
            registry.register(
                s, version=v, checkpoint_uri=str(path), sha256=sha, architecture="resnet50"
            )
    loads: list[str] = []

    def load(source):
        loads.append(source.version)
        return build_classifier(source, FP32, "never")

    holder = ShadowHolder(load, lambda: shadow_choice(sessions))
    assert holder.check_once() is False and holder.current() is None
    with sessions() as s, s.begin():
        shadow.start(s, "green-v1", 0.5, "test")
    assert holder.check_once() is True
    first = holder.current()
    assert first is not None and (first.version, first.fraction) == ("green-v1", 0.5)
    with sessions() as s, s.begin():
        shadow.start(s, "green-v1", 1.0, "test")
    assert holder.check_once() is True
    now = holder.current()
    assert now is not None and now.fraction == 1.0 and now.classifier is first.classifier
    before = _failures("load")
    with sessions() as s, s.begin():
        shadow.start(s, "bad", 1.0, "test")
    assert holder.check_once() is False and holder.current() is None
    assert holder.check_once() is False  # not read and tried again on every poll
    assert _failures("load") == before + 1 and loads == ["green-v1", "bad"]
    with sessions() as s, s.begin():
        shadow.start(s, "green-v1", 1.0, "test")
    assert holder.check_once() is True and holder.current() is not None
    with sessions() as s, s.begin():
        shadow.stop(s, "test")
    assert holder.check_once() is True and holder.current() is None

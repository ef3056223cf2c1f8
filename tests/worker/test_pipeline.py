"""The pipeline as a plain function: real PostgreSQL, real photo files, a tiny random model."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from db.session import make_engine
from db.tables import Result
from harness import images
from models.formats import CAMERA_FORMATS
from models.network import CLASSES, CRACK_INDEX, build_model
from models.numerics import resolve_numerics
from models.serving import Classifier
from models.transforms import stack
from worker import outage
from worker.forward import Forward
from worker.pipeline import Item, MapPolicy, PipelineConfig, classify, load, verdict
from worker.sources import SourceLimits

pytestmark = pytest.mark.usefixtures("clean_tables")
SIZE = 32  # the smallest side ResNet50 takes; the photos are resized to it


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    torch.manual_seed(0)
    fp32 = resolve_numerics("cpu", "fp32", channels_last=False)
    return Classifier(build_model(), fp32, "tiny-random", input_size=SIZE)


@pytest.fixture
def photos(tmp_path: Path) -> tuple[PipelineConfig, dict[str, str]]:
    """Files under an allowed root: four good photos and one of each kind of failure."""
    root = tmp_path / "root"
    root.mkdir()
    files = {
        "good-0": images.jpeg(64, 48, pattern="noise"),
        "good-1": images.jpeg(80, 60, color=(20, 20, 20)),
        "good-2": images.png(64, 64, pattern="gradient"),
        "good-3": images.cmyk_jpeg(),
        "not_an_image": images.not_an_image(),
        "truncated_image": images.truncated_jpeg(),
        "empty_file": b"",
    }
    refs = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        refs[name] = str(root / name)
    refs["not_found"] = str(root / "missing.jpg")
    (tmp_path / "outside.jpg").write_bytes(images.jpeg())
    refs["path_not_allowed"] = str(tmp_path / "outside.jpg")
    limits = SourceLimits(allowed_roots=(root,), max_bytes=10_000_000, http_timeout_s=5)
    # these photos are all classified whole (tests/worker/test_mapping.py maps photos)
    whole = MapPolicy(min_side_factor=1000)
    return PipelineConfig(limits, 50_000_000, CAMERA_FORMATS, "test-host", whole), refs


def stored(sessions, ids: list[str]) -> dict[str, Result]:
    with sessions() as s:
        rows = s.scalars(select(Result).where(Result.request_id.in_(ids)))
        return {r.request_id: r for r in rows}


def test_one_row_per_item_with_labels_and_recorded_failures(sessions, classifier, photos) -> None:
    config, refs = photos
    items = [Item(f"p-{name}", ref, "pipeline-test") for name, ref in refs.items()]
    rows = classify(items, classifier, sessions, config).rows
    assert len(rows) == len(items)
    by_id = stored(sessions, [i.request_id for i in items])
    assert set(by_id) == {i.request_id for i in items}
    for name in refs:
        row = by_id[f"p-{name}"]
        assert row.worker_host == "test-host" and row.batch_id == "pipeline-test"
        if name.startswith("good"):
            assert row.status == "succeeded" and row.label in CLASSES
            assert 0.5 <= row.confidence <= 1.0 and 0.0 <= row.crack_probability <= 1.0
            assert (row.label == "crack") == (row.crack_probability >= 0.5)
            assert row.model_version == "tiny-random" and row.batch_size == 4
        else:
            assert row.status == "failed" and row.label is None, name
            assert row.error_code == name and row.error_message, (name, row.error_message)


def test_asset_fields_reach_succeeded_and_failed_rows(sessions, classifier, photos) -> None:
    config, refs = photos
    at = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
    tags = {"asset_id": "pier-7", "inspection_id": "v1", "captured_at": at}
    meta = {"camera": "drone-3", "gps": [47.3, 8.5]}
    items = [
        Item("a-good", refs["good-0"], **tags, metadata=meta),
        Item("a-bad", refs["not_found"], **tags, metadata=meta),
        Item("a-none", refs["good-1"]),
    ]
    classify(items, classifier, sessions, config)
    by_id = stored(sessions, [i.request_id for i in items])
    assert (by_id["a-good"].status, by_id["a-bad"].status) == ("succeeded", "failed")
    for request_id in ("a-good", "a-bad"):
        row = by_id[request_id]
        assert (row.asset_id, row.inspection_id, row.captured_at) == ("pier-7", "v1", at)
        assert row.asset_metadata == meta
    untagged = by_id["a-none"]
    assert (untagged.asset_id, untagged.captured_at, untagged.asset_metadata) == (None,) * 3


def test_finished_ids_are_skipped_and_a_repeated_id_makes_one_row(
    sessions, classifier, photos
) -> None:
    config, refs = photos
    twice = [Item("dup", refs["good-0"]), Item("dup", refs["good-1"])]
    assert [r["image_ref"] for r in classify(twice, classifier, sessions, config).rows] == [
        refs["good-0"]
    ]
    assert classify(twice, classifier, sessions, config).rows == []  # already final: not redone
    assert stored(sessions, ["dup"])["dup"].image_ref == refs["good-0"]


def test_decode_pool_and_forward_thread_give_the_same_rows(sessions, classifier, photos) -> None:
    config, refs = photos
    good = [ref for name, ref in refs.items() if name.startswith("good")]
    items = [Item(f"a{i}", r) for i, r in enumerate(good)]
    plain = classify(items, classifier, sessions, config).rows
    forward = Forward(max_batch=32, busy_batch=4)
    with ThreadPoolExecutor(2) as pool:
        pooled = classify(
            [Item(f"b{i}", r) for i, r in enumerate(good)],
            classifier,
            sessions,
            config,
            pool=pool,
            forward=forward,
        ).rows
    assert forward.close(5) and forward.forwards == 1
    assert [r["crack_probability"] for r in pooled] == pytest.approx(
        [r["crack_probability"] for r in plain], abs=1e-5
    )


def test_the_checkpoint_threshold_decides_the_label(sessions, classifier, photos) -> None:
    """Labels follow raw p >= threshold; stored values read as the old logit shift gave them."""
    config, refs = photos
    good = [ref for name, ref in refs.items() if name.startswith("good")]
    pixels = [load(Item("x", r), config.limits, config.max_pixels, SIZE).pixels for r in good]
    logits = classifier.logits(stack(pixels))  # type: ignore[arg-type]
    raw = torch.softmax(logits, dim=1)[:, CRACK_INDEX].tolist()
    threshold = sorted(raw)[2]  # two photos below it, two at or above
    tuned = Classifier(classifier.model, classifier.numerics, "tuned", SIZE, threshold)
    rows = classify([Item(f"t{i}", r) for i, r in enumerate(good)], tuned, sessions, config).rows
    shift = torch.logit(torch.tensor(threshold))
    logits[:, CRACK_INDEX] -= shift  # what serving did before the threshold was explicit
    shifted = torch.softmax(logits, dim=1)[:, CRACK_INDEX].tolist()
    for row, p, old in zip(rows, raw, shifted, strict=True):
        assert row["label"] == ("crack" if p >= threshold else "no_crack")
        assert row["crack_probability"] == pytest.approx(old, abs=1e-5)
        assert row["confidence"] == pytest.approx(max(old, 1 - old), abs=1e-5)
    assert sorted(r["label"] for r in rows) == ["crack", "crack", "no_crack", "no_crack"]


@pytest.mark.parametrize("threshold", [0.5, 0.02, 0.3, 0.97])
def test_verdict_agrees_with_its_own_label(threshold: float) -> None:
    for p in (0.0, 1e-9, 0.01, threshold, 0.5, 0.99, 1.0):
        v = verdict(p, threshold)
        assert v["label"] == ("crack" if p >= threshold else "no_crack")
        assert (v["crack_probability"] >= 0.5) == (v["label"] == "crack")
        assert 0.5 <= v["confidence"] <= 1.0


def test_an_unreachable_database_propagates_as_an_outage(classifier, photos) -> None:
    """The pipeline does not retry: the task's one policy (worker.outage) decides."""
    config, refs = photos
    dead = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(Exception) as caught:
            classify([Item("o", refs["good-0"])], classifier, sessionmaker(dead), config)
    finally:
        dead.dispose()
    assert outage.is_outage(caught.value)

"""Training reads operator labels and files as inference does, within the decoder's limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from db import review, runs
from harness import images
from models.recipe import Recipe
from tests.worker.finetuning import run
from worker.settings import Settings
from worker.trainingdata import DataSpec

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.fixture
def photo_server():
    """A loopback HTTP server with one photo at /photo.jpg; yields (url, hits)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body, hits = images.jpeg(64, 64), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200 if self.path == "/photo.jpg" else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.jpg", hits
    server.shutdown()
    server.server_close()


def label_results(
    sessions,
    refs: dict[str, str],
    status: str = "succeeded",
    reviewed: frozenset[str] = frozenset(),
) -> None:
    """A row and a label per ref; those in `reviewed` answered through the review queue."""
    from db.tables import Label, Result, ReviewEntry

    with sessions() as s, s.begin():
        for i, (ref, label) in enumerate(refs.items()):
            rid = f"{status}-{i}"
            s.add(Result(request_id=rid, image_ref=ref, status=status))
            s.flush()
            if ref in reviewed:
                s.add(ReviewEntry(request_id=rid, reason="uncertain"))
                s.flush()
                review.answer(s, rid, label, "reviewer")
            elif status == "succeeded":
                runs.set_label(s, rid, label, "tester")
            else:  # labelled before `crackq label` refused such rows
                s.add(Label(request_id=rid, label=label, labelled_by="tester"))


@pytest.mark.slow
def test_training_reads_labels_like_inference_and_operator_files_within_decoder_limits(
    sessions, tmp_path, synthetic_root, photo_server, caplog
) -> None:
    """Issue 11: labelled refs get the allowed roots and the URL reader; every file the decoder's limits."""
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    disguised = data / "Positive" / "zz_disguised.jpg"  # the operator's own folder, but a PPM
    Image.new("RGB", (64, 64), (9, 9, 9)).save(disguised, format="PPM")
    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir()
    elsewhere.mkdir()
    (uploads / "ok.jpg").write_bytes(images.jpeg(64, 64))
    (uploads / "bomb.png").write_bytes(images.png(100, 100))  # over this run's pixel limit
    (elsewhere / "secret.jpg").write_bytes(images.jpeg(64, 64))
    (uploads / "link.jpg").symlink_to(elsewhere / "secret.jpg")
    url, hits = photo_server
    label_results(
        sessions,
        {
            str(uploads / "ok.jpg"): "crack",
            f"file://{uploads / 'bomb.png'}": "crack",
            str(uploads / "gone.jpg"): "no_crack",  # inside the roots, but missing
            str(elsewhere / "secret.jpg"): "crack",
            str(uploads / "link.jpg"): "crack",
            url: "no_crack",
            "ftp://example.com/x.jpg": "crack",
        },
        reviewed=frozenset({str(uploads / "ok.jpg"), url, "ftp://example.com/x.jpg"}),
    )
    (uploads / "failed.jpg").write_bytes(images.truncated_jpeg())
    label_results(sessions, {str(uploads / "failed.jpg"): "crack"}, status="failed")
    settings = Settings(
        data_dir=tmp_path / "state",
        allowed_roots=[uploads],
        allow_private_urls=True,  # the photo server is on loopback
        max_image_pixels=100 * 100 - 1,
    )
    recipe = Recipe(
        epochs=1, batch_size=64, image_size=64, num_workers=1, init="random", val_fraction=0.3
    )  # one batch: every sample is read, and by a DataLoader worker process
    spec = DataSpec(folders=[str(data)], use_labels=True)
    with caplog.at_level("INFO", logger="worker.trainingdata"):
        outcome, row, _ = run(sessions, tmp_path, spec, recipe, settings=settings)
    assert outcome["status"] == "succeeded", row.message
    counts = row.data_summary["train"], row.data_summary["val"]
    # 48 synthetic + the PPM + ok, bomb, gone and the URL; not the two outside the roots or ftp
    assert sum(n for c in counts for n in c.values()) == 48 + 1 + 4
    skipped = {Path(s["path"]).name: s["reason"] for s in row.data_summary["skipped_examples"]}
    assert row.data_summary["skipped"] == 3, skipped
    assert "not_an_image" in skipped["zz_disguised.jpg"]
    assert "not_found" in skipped["gone.jpg"]
    assert "too_many_pixels" in skipped["bomb.png"]
    assert hits and set(hits) == {"/photo.jpg"}
    line = next(r.getMessage() for r in caplog.records if "labelled" in r.getMessage())
    assert "using 4 of 7 labelled" in line
    assert "2 outside the allowed roots" in line and "1 unsupported scheme" in line
    # review-queue answers are labels like any other; the run counts those it used
    assert row.data_summary["labels"] == {"labelled": 7, "used": 4, "from_review": 2}


def test_the_training_loader_pickles_and_enforces_the_limits_itself(tmp_path) -> None:
    """DataLoader workers get a copy (fork or spawn); the reader refuses, not only the sieve."""
    import pickle

    from worker.errors import ImageError
    from worker.sources import SourceLimits
    from worker.trainingdata import TrainingImages

    uploads, operator = tmp_path / "uploads", tmp_path / "operator"
    uploads.mkdir()
    operator.mkdir()
    (uploads / "ok.jpg").write_bytes(images.jpeg(64, 48))
    (operator / "mine.jpg").write_bytes(images.jpeg(64, 48))
    (operator / "theirs.jpg").write_bytes(images.jpeg(64, 48))
    Image.new("RGB", (64, 64)).save(operator / "disguised.jpg", format="PPM")
    trusted = frozenset({str(operator / "mine.jpg"), str(operator / "disguised.jpg")})
    limits = SourceLimits(allowed_roots=(uploads,), max_bytes=1 << 20, http_timeout_s=1.0)
    formats = ("JPEG", "PNG")
    load = pickle.loads(pickle.dumps(TrainingImages(limits, 64 * 64, formats, trusted)))
    assert load == TrainingImages(limits, 64 * 64, formats, trusted)
    assert load(str(uploads / "ok.jpg"), 32).size == (64, 48)
    assert load(str(operator / "mine.jpg"), 32).mode == "RGB"  # named by the operator
    with pytest.raises(ImageError, match="path_not_allowed"):
        load(str(operator / "theirs.jpg"), 32)  # not named, and outside the allowed roots
    with pytest.raises(ImageError, match="not_an_image"):
        load(str(operator / "disguised.jpg"), 32)  # trusted path, still photo formats only
    Image.new("RGB", (64, 48)).save(uploads / "photo.webp", format="WEBP")
    with pytest.raises(ImageError, match="not_an_image"):
        load(str(uploads / "photo.webp"), 32)  # a photo format, but not one configured
    (uploads / "big.jpg").write_bytes(images.jpeg(65, 64))
    with pytest.raises(ImageError, match="too_many_pixels"):
        load(str(uploads / "big.jpg"), 32)

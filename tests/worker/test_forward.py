"""The forward thread: photos before tiles, small passes and capped re-scores while photos come."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from models.numerics import resolve_numerics
from models.serving import Classifier
from worker.forward import PATCH, RESCORE, TILES, Forward, ForwardClosed


class Recording(nn.Module):
    """Logits from each image's first pixel, after a pause; remembers every batch's size."""

    def __init__(self, pause_s: float, fail_on: int | None = None) -> None:
        super().__init__()
        self.pause_s, self.fail_on = pause_s, fail_on
        self.sizes: list[int] = []
        self.starts: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        self.starts.append(time.monotonic())
        time.sleep(self.pause_s)
        if self.fail_on is not None and len(self.sizes) == self.fail_on:
            raise RuntimeError("planted failure")
        v = x[:, 0, 0, 0].float()
        return torch.stack([-v, v], dim=1)


def classifier(module: Recording) -> Classifier:
    return Classifier(module, resolve_numerics("cpu", "fp32", False), "rec", input_size=4)


def pixels(n: int, value: int) -> np.ndarray:
    return np.full((n, 4, 4, 3), value, dtype=np.uint8)


def in_thread(target, *args) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = target(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_a_photo_waits_for_one_small_forward_pass_not_for_all_the_tiles() -> None:
    module = Recording(pause_s=0.01)
    clf, forward = classifier(module), Forward(max_batch=16, busy_batch=2, busy_s=5.0)
    tiles_thread, tiles = in_thread(forward.predict, clf, pixels(160, 200), TILES)
    while not module.sizes:  # tiles are running, in batches of 16: no photo seen yet
        time.sleep(0.001)
    before = len(module.sizes)
    photo = forward.predict(clf, pixels(1, 10), PATCH)
    tiles_thread.join(20)
    assert forward.close(5)
    assert photo.shape == (1,) and photo[0] < 0.5
    assert tiles["value"].shape == (160,) and (tiles["value"] > 0.5).all()
    assert set(module.sizes[:before]) == {16}  # alone, tiles take the full batch
    assert before < 10, "the tiles were done before the photo came: the test proves nothing"
    # the photo went in at most two passes after it came (the pass in progress may have
    # begun just before), beside at most one tile; every tile pass after it was small
    first_small = next(i for i, n in enumerate(module.sizes) if n <= 2)
    assert first_small <= before + 1 and max(module.sizes[first_small:]) <= 2
    assert sum(module.sizes) == 161


def test_a_failed_forward_fails_only_the_work_inside_it() -> None:
    module = Recording(pause_s=0.0, fail_on=1)
    clf, forward = classifier(module), Forward(max_batch=8, busy_batch=8)
    with pytest.raises(RuntimeError, match="planted"):
        forward.predict(clf, pixels(3, 200), PATCH)
    assert forward.predict(clf, pixels(2, 200), PATCH).shape == (2,)
    assert forward.close(5) and module.sizes == [3, 2]


def test_close_fails_the_waiting_work_and_later_calls() -> None:
    module = Recording(pause_s=0.3)
    clf, forward = classifier(module), Forward(max_batch=1, busy_batch=1)
    running, first = in_thread(forward.predict, clf, pixels(1, 1), PATCH)
    time.sleep(0.1)
    waiting, second = in_thread(forward.predict, clf, pixels(3, 1), TILES)
    time.sleep(0.05)
    assert forward.close(5)
    running.join(5), waiting.join(5)
    assert first["value"].shape == (1,)  # the pass in progress finished
    assert isinstance(second.get("error"), ForwardClosed)
    with pytest.raises(ForwardClosed):
        forward.predict(clf, pixels(1, 1), PATCH)


def test_each_forward_pass_serves_one_model() -> None:
    a, b = Recording(pause_s=0.05), Recording(pause_s=0.0)
    forward = Forward(max_batch=8, busy_batch=8)
    first, _ = in_thread(forward.predict, classifier(a), pixels(1, 1), PATCH)
    time.sleep(0.01)
    t1, r1 = in_thread(forward.predict, classifier(a), pixels(2, 1), PATCH)
    t2, r2 = in_thread(forward.predict, classifier(b), pixels(2, 1), PATCH)
    for t in (first, t1, t2):
        t.join(5)
    assert forward.close(5)
    assert r1["value"].shape == r2["value"].shape == (2,)
    assert sum(a.sizes) == 3 and b.sizes == [2]


def test_tiles_ride_only_in_the_padding_of_a_pass_with_photos() -> None:
    module = Recording(pause_s=0.05)
    clf = classifier(module)
    clf.buckets = (1, 2, 4, 8)  # a padded (compiled) model runs these shapes only
    forward = Forward(max_batch=8, busy_batch=2, busy_s=5.0)
    first, _ = in_thread(forward.predict, clf, pixels(1, 1), PATCH)  # occupies the thread
    time.sleep(0.02)
    tiles_thread, tiles = in_thread(forward.predict, clf, pixels(21, 200), TILES)
    time.sleep(0.01)
    photos = forward.predict(clf, pixels(3, 1), PATCH)
    for t in (first, tiles_thread):
        t.join(10)
    assert forward.close(5)
    assert photos.shape == (3,) and tiles["value"].shape == (21,)
    # after the first photo: three photos padded to 4 carry one tile, then tile passes of 2
    assert module.sizes[:2] == [1, 4] and set(module.sizes[2:]) == {2}


def test_rescores_take_only_their_share_of_the_thread_while_photos_arrive() -> None:
    module = Recording(pause_s=0.1)
    clf = classifier(module)
    forward = Forward(max_batch=8, busy_batch=2, busy_s=5.0, rescore_share=0.25)
    forward.predict(clf, pixels(1, 10), PATCH)  # photos are arriving
    rescore_thread, rescored = in_thread(forward.predict, clf, pixels(8, 200), RESCORE)
    while len(module.sizes) < 2:  # the first re-score pass is in the model
        time.sleep(0.001)
    time.sleep(0.15)  # it ended 0.1 s in; the next may start 0.4 s in (0.1 s is 25%)
    photo = forward.predict(clf, pixels(1, 10), PATCH)
    rescore_thread.join(10)
    assert forward.close(5)
    assert photo.shape == (1,) and rescored["value"].shape == (8,)
    assert module.sizes == [1, 2, 1, 2, 2, 2]  # the photo found no re-score pass running
    starts = [t for t, n in zip(module.starts, module.sizes, strict=True) if n == 2]
    gaps = np.diff(starts)
    assert (gaps >= 0.37).all(), gaps  # pass + 3x its time for photos; unthrottled: 0.1 s


def test_rescores_run_at_full_speed_without_photos_and_tiles_are_not_capped() -> None:
    module = Recording(pause_s=0.05)
    clf = classifier(module)
    forward = Forward(max_batch=4, busy_batch=2, busy_s=0.2, rescore_share=0.1)
    t0 = time.monotonic()
    assert forward.predict(clf, pixels(8, 200), RESCORE).shape == (8,)
    alone_s = time.monotonic() - t0
    forward.predict(clf, pixels(1, 10), PATCH)  # photos are arriving for the next 0.2 s
    t0 = time.monotonic()
    assert forward.predict(clf, pixels(6, 200), TILES).shape == (6,)
    tiles_s = time.monotonic() - t0
    assert forward.close(5)
    assert module.sizes == [4, 4, 1, 2, 2, 2]
    assert alone_s < 0.3 and tiles_s < 0.3, (alone_s, tiles_s)  # capped: >= 1 s each


class Blocks:
    """A dense map engine that answers each block with its first pixel, after a pause."""

    name = "test"

    def __init__(self, pause_s: float) -> None:
        self.pause_s, self.calls = pause_s, 0

    def predict(self, block: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.pause_s)
        return np.full((2, 3), block[0, 0, 0, 0] / 255.0, dtype=np.float32)

    def close(self) -> None:
        pass


def test_dense_blocks_are_passes_of_their_own_after_the_photos() -> None:
    module = Recording(pause_s=0.05)
    clf, forward = classifier(module), Forward(max_batch=16, busy_batch=2, busy_s=5.0)
    engine = Blocks(pause_s=0.05)
    clf.dense = engine  # type: ignore[assignment]
    block = np.full((1, 64, 96, 3), 51, dtype=np.uint8)
    threads = [in_thread(forward.predict_block, clf, block) for _ in range(4)]
    time.sleep(0.02)  # a block is in the model now; the photo comes next, before the rest
    photo_thread, photo = in_thread(forward.predict, clf, pixels(1, 255), PATCH)
    photo_thread.join(5)
    waited_for = engine.calls
    for t, _ in threads:
        t.join(5)
    assert photo["value"].shape == (1,) and photo["value"][0] > 0.9  # a bright first pixel
    assert waited_for <= 2, waited_for  # the block in flight, at most one more
    assert engine.calls == 4 and module.sizes == [1]
    assert all(np.allclose(out["value"], 0.2) for _, out in threads)
    forward.close(5)


def test_a_block_for_a_model_without_a_dense_engine_fails_its_caller_only() -> None:
    clf, forward = classifier(Recording(pause_s=0.0)), Forward(max_batch=4, busy_batch=2)
    with pytest.raises(RuntimeError, match="without a dense map engine"):
        forward.predict_block(clf, np.zeros((1, 8, 8, 3), dtype=np.uint8))
    assert forward.predict(clf, pixels(2, 9), PATCH).shape == (2,)
    forward.close(5)

"""The one thread that runs forward passes: photos first, map tiles and re-scores in the gaps.

Every forward pass of a worker process goes through `Forward.predict`. Photos classified
whole ("patch" work: someone is waiting for each) go first, in a pass of their own; tiles
of photos being mapped ride along only in the padding of that pass (free: a compiled or
captured model runs the padded shape anyway), and otherwise run in passes of their own.
While photos arrive (one in the last `busy_s`), a tile pass holds at most `busy_batch`
images, so a photo arriving waits for one small pass, never for a long run of tiles.
A block of a fully convolutional map (models.dense) is a pass of its own, in the same gaps. On a
CPU the model's images/s hardly depend on the batch size, so this costs tiles little.
Re-scores of stored rows (worker.rescoring) come last, in passes like tiles', and while
photos arrive they may take only `rescore_share` of the thread's time: after a re-score
pass of d seconds the next waits d * (1 - share) / share, so most photos find no pass in
progress (a re-score is a backlog with no one waiting on each row; a map is not).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from models.network import CRACK_INDEX
from models.serving import Classifier

log = logging.getLogger(__name__)

PATCH, TILES, BLOCKS, RESCORE = "patch", "tiles", "blocks", "rescore"


class ForwardClosed(RuntimeError):
    """The forward thread was stopped (worker shutdown) before this work ran."""


@dataclass(eq=False)
class _Work:
    classifier: Classifier
    pixels: np.ndarray  # uint8 (n, H, W, 3)
    block: bool = False  # one block of a dense map: out is its (rows, cols) windows
    kind: str = PATCH
    out: np.ndarray = field(init=False)
    done: int = 0  # images of `pixels` already through the model
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.out = np.empty(len(self.pixels), dtype=np.float32)

    @property
    def left(self) -> int:
        return len(self.pixels) - self.done


class Forward:
    """Runs every forward pass of a process on one thread, in the order described above."""

    def __init__(
        self, max_batch: int, busy_batch: int, busy_s: float = 1.0, rescore_share: float = 1.0
    ) -> None:
        self.max_batch = max(1, max_batch)
        self.busy_batch = max(1, min(busy_batch, self.max_batch))
        self.busy_s = busy_s
        self.rescore_share = min(max(rescore_share, 0.01), 1.0)
        kinds = (PATCH, TILES, BLOCKS, RESCORE)
        self._queues: dict[str, deque[_Work]] = {kind: deque() for kind in kinds}
        self._cond = threading.Condition()
        self._last_patch = -float("inf")
        self._rescore_after = -float("inf")  # no re-score pass before this while photos arrive
        self._closed = False
        self.forwards = 0  # forward passes run, for tests and logs
        self._thread = threading.Thread(target=self._loop, name="crackq-forward", daemon=True)
        self._thread.start()

    def predict(self, classifier: Classifier, pixels: np.ndarray, kind: str = PATCH) -> np.ndarray:
        """Raw crack probabilities (n,) of uint8 (n, H, W, 3) `pixels`; blocks until done."""
        if len(pixels) == 0:
            return np.empty(0, dtype=np.float32)
        return self._wait(_Work(classifier, pixels, kind=kind), kind)

    def predict_block(self, classifier: Classifier, pixels: np.ndarray) -> np.ndarray:
        """Raw crack probabilities (rows, cols) of one dense-map block, uint8 (1, H, W, 3),
        through `classifier.dense`; in the gaps between photos, like tiles."""
        return self._wait(_Work(classifier, pixels, block=True, kind=BLOCKS), BLOCKS)

    def _wait(self, work: _Work, kind: str) -> np.ndarray:
        with self._cond:
            if self._closed:
                raise ForwardClosed("the worker is shutting down")
            if kind == PATCH:
                self._last_patch = time.monotonic()
            self._queues[kind].append(work)
            self._cond.notify()
        work.finished.wait()
        if work.error is not None:
            raise work.error
        return work.out

    def close(self, timeout_s: float) -> bool:
        """Finish the forward pass in progress, fail the waiting work; False on a timeout."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        self._fail_waiting()
                        return
                    taken = self._take(time.monotonic())
                    if taken:
                        break
                    self._cond.wait(self._rescore_wait_s(time.monotonic()))
            started = time.monotonic()
            self._run(taken)
            if taken[0][0].kind == RESCORE:  # a pass with photos is never a re-score pass
                self._after_rescore(started, time.monotonic())

    def _take(self, now: float) -> list[tuple[_Work, int, int]]:
        """(work, start, stop) slices for the next forward pass, all for one model; [] if
        only re-scores wait and their share of the thread's time is used up for now.

        Every waiting photo goes in whole, with tiles (then re-scores) only in the padding
        up to the model's next batch bucket; a pass of tiles or re-scores alone holds
        `busy_batch` images while photos arrive, else `max_batch`.
        """
        patches, tiles, blocks = self._queues[PATCH], self._queues[TILES], self._queues[BLOCKS]
        rescores = self._queues[RESCORE]
        if not patches and blocks and not tiles:
            work = blocks.popleft()  # a block is a pass of its own: its shape is its own
            return [(work, 0, 1)]
        rescores_may_run = self._rescore_wait_s(now) == 0
        if not patches and not tiles and not (rescores and rescores_may_run):
            return []
        model = (patches or tiles or rescores)[0].classifier
        busy = bool(patches) or now - self._last_patch < self.busy_s
        room = self.busy_batch if busy else self.max_batch
        taken: list[tuple[_Work, int, int]] = []
        while patches and patches[0].classifier is model:
            work = patches.popleft()
            taken.append((work, 0, len(work.pixels)))
            work.done = len(work.pixels)
        if taken:  # re-scores may ride in a photo pass's padding: it costs photos nothing
            room = _padding(model, sum(len(w.pixels) for w, _, _ in taken))
        for queue in (tiles, rescores) if taken or rescores_may_run else (tiles,):
            while queue and room > 0 and queue[0].classifier is model:
                work = queue[0]
                n = min(work.left, room)
                taken.append((work, work.done, work.done + n))
                work.done += n
                room -= n
                if work.left == 0:
                    queue.popleft()
        return taken

    def _rescore_wait_s(self, now: float) -> float | None:
        """Seconds before a re-score pass may start (0: now), None if nothing waits on time."""
        if not self._queues[RESCORE]:
            return None
        if now - self._last_patch >= self.busy_s:
            return 0.0  # no photos arriving: re-scores run at full speed
        return max(0.0, min(self._rescore_after, self._last_patch + self.busy_s) - now)

    def _after_rescore(self, started: float, ended: float) -> None:
        """Leave photos (1 - share) / share of this re-score pass's time before the next."""
        gap = (ended - started) * (1.0 - self.rescore_share) / self.rescore_share
        with self._cond:
            self._rescore_after = ended + gap

    def _run(self, taken: list[tuple[_Work, int, int]]) -> None:
        if taken[0][0].block:
            self._run_block(taken[0][0])
            return
        batch = np.concatenate([w.pixels[a:b] for w, a, b in taken])
        try:
            probs = taken[0][0].classifier.predict(torch.from_numpy(batch))[:, CRACK_INDEX]
            values = probs.numpy()
        except BaseException as exc:  # the waiting threads re-raise it
            failed = {id(work) for work, _, _ in taken}
            with self._cond:  # a tile work split over passes gives up its other slices
                for queue in self._queues.values():
                    kept = [w for w in queue if id(w) not in failed]
                    queue.clear()
                    queue.extend(kept)
            for work, _, _ in taken:
                work.error = exc
                work.finished.set()
            return
        self.forwards += 1
        offset = 0
        for work, a, b in taken:
            work.out[a:b] = values[offset : offset + b - a]
            offset += b - a
            if b == len(work.pixels):
                work.finished.set()

    def _run_block(self, work: _Work) -> None:
        try:
            work.out = dense_predict(work.classifier, work.pixels)
            self.forwards += 1
        except BaseException as exc:  # the waiting thread re-raises it
            work.error = exc
        work.finished.set()

    def _fail_waiting(self) -> None:
        for queue in self._queues.values():
            for work in queue:
                work.error = ForwardClosed("the worker shut down before this work ran")
                work.finished.set()
            queue.clear()


def _padding(model: Classifier, n: int) -> int:
    """Images a pass of `n` could add for free: up to the model's next padded batch size."""
    bucket = next((b for b in model.buckets if b >= n), n)
    return bucket - n


def run(
    forward: Forward | None, classifier: Classifier, pixels: np.ndarray, kind: str
) -> np.ndarray:
    """Raw crack probabilities of uint8 (n,H,W,3) `pixels`: through `forward`, or in this thread."""
    if forward is not None:
        return forward.predict(classifier, pixels, kind)
    return classifier.predict(torch.from_numpy(pixels))[:, CRACK_INDEX].numpy()


def run_block(forward: Forward | None, classifier: Classifier, pixels: np.ndarray) -> np.ndarray:
    """Raw crack probabilities (rows, cols) of a dense-map block: through `forward`, or here."""
    if forward is not None:
        return forward.predict_block(classifier, pixels)
    return dense_predict(classifier, pixels)


def dense_predict(classifier: Classifier, pixels: np.ndarray) -> np.ndarray:
    if classifier.dense is None:
        raise RuntimeError(f"model {classifier.version} was loaded without a dense map engine")
    return classifier.dense.predict(pixels)

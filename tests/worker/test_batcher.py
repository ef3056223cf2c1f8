"""The batching policy: full batches go at once, partial ones after the wait, bounded in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from worker.batcher import Batcher


class Recorder:
    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.hold = hold
        self.lock = threading.Lock()

    def __call__(self, batch) -> None:
        if self.hold is not None:
            self.hold.wait(5)
        with self.lock:
            self.batches.append(list(batch))


def release(pool: ThreadPoolExecutor, hold: threading.Event, rec: Recorder, n: int) -> None:
    """Let the held batches run and wait until `n` messages have gone through."""
    hold.set()
    deadline = time.monotonic() + 5
    while sum(map(len, rec.batches)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.shutdown(wait=True)


def held(
    workers: int, messages: int, **policy: float
) -> tuple[ThreadPoolExecutor, threading.Event, Recorder, Batcher]:
    """A batcher whose batches block until released, after `messages` were added to it."""
    pool, hold = ThreadPoolExecutor(workers), threading.Event()
    rec = Recorder(hold)
    b = Batcher(pool.submit, rec, **policy)  # type: ignore[arg-type]
    for i in range(messages):
        b.add(i)  # type: ignore[arg-type]
    return pool, hold, rec, b


def test_full_batches_are_dispatched_without_waiting() -> None:
    pool, hold, rec, b = held(2, 8, max_batch=4, max_wait_s=60, max_inflight=2)
    # 0 goes alone (the model was idle), 1-4 as soon as they fill a batch; 5-7 wait for
    # a free slot and then for an idle model, since max_wait_s is long.
    assert b.batches == 2 and b.pending() == 3
    release(pool, hold, rec, 8)
    assert sorted(map(tuple, rec.batches)) == [(0,), (1, 2, 3, 4), (5, 6, 7)]


def test_a_lone_message_goes_at_once_when_nothing_is_in_flight() -> None:
    pool = ThreadPoolExecutor(2)
    rec = Recorder()
    b = Batcher(pool.submit, rec, max_batch=32, max_wait_s=60, max_inflight=2)
    b.add(1)  # type: ignore[arg-type]
    assert b.batches == 1, "an idle model kept a lone message waiting"
    pool.shutdown(wait=True)
    assert rec.batches == [[1]]


def test_partial_batch_waits_while_another_is_in_flight_then_flushes() -> None:
    pool = ThreadPoolExecutor(2)
    hold = threading.Event()
    rec = Recorder(hold)
    b = Batcher(pool.submit, rec, max_batch=32, max_wait_s=0.05, max_inflight=2)
    b.add(1)  # type: ignore[arg-type]  # idle: goes at once and stays in flight
    b.add(2)  # type: ignore[arg-type]
    b.flush()
    assert b.batches == 1, "a partial batch was sent before max_wait_s"
    time.sleep(0.06)
    b.flush()  # the consumer's timer does this every max_wait_s / 2
    assert b.batches == 2
    hold.set()
    pool.shutdown(wait=True)
    assert sorted(rec.batches) == [[1], [2]]


def test_in_flight_limit_makes_the_buffer_grow_into_big_batches() -> None:
    pool, hold, rec, b = held(4, 20, max_batch=16, max_wait_s=0, max_inflight=1)
    assert b.batches == 1 and b.pending() == 19  # the model is busy: the rest accumulates
    release(pool, hold, rec, 20)
    assert [len(x) for x in rec.batches] == [1, 16, 3]
    assert b.largest_batch == 16


def test_a_failing_batch_frees_its_slot() -> None:
    pool = ThreadPoolExecutor(1)

    def boom(batch) -> None:
        raise RuntimeError("model fell over")

    b = Batcher(pool.submit, boom, max_batch=2, max_wait_s=0, max_inflight=1)
    b.add(1)  # type: ignore[arg-type]
    pool.shutdown(wait=True)
    assert b._inflight == 0

"""The map lane: photos in order, one at a time; a stop leaves the waiting ones unacked."""

from __future__ import annotations

import threading
import time
from typing import Any

from worker.jobs import Item, Loaded
from worker.maplane import MapLane


def loaded(name: str) -> Loaded:
    return Loaded(Item(name, f"/photos/{name}.jpg"), None, None, 0.0, data=b"bytes")


def test_photos_are_mapped_in_order_and_each_callback_hears_once() -> None:
    order: list[str] = []
    heard: list[tuple[str, Any, Any]] = []
    done = threading.Event()

    def map_one(x: Loaded, _clf: Any) -> dict[str, Any]:
        order.append(x.item.request_id)
        if x.item.request_id == "bad":
            raise ValueError("broken photo")
        return {"request_id": x.item.request_id}

    lane = MapLane(map_one)
    for name in ("a", "bad", "c"):
        lane.put(loaded(name), None, lambda row, exc, n=name: heard.append((n, row, exc)))  # type: ignore[arg-type,misc]
    lane.put(loaded("end"), None, lambda *_: done.set())  # type: ignore[arg-type]
    assert done.wait(5) and lane.close(5)
    assert order == ["a", "bad", "c", "end"]
    assert [(n, row is not None, type(exc).__name__) for n, row, exc in heard] == [
        ("a", True, "NoneType"),
        ("bad", False, "ValueError"),
        ("c", True, "NoneType"),
    ]
    assert lane.mapped == 3


def test_close_finishes_the_photo_in_progress_and_leaves_the_rest() -> None:
    started = threading.Event()
    heard: list[str] = []

    def slow(x: Loaded, _clf: Any) -> dict[str, Any]:
        started.set()
        time.sleep(0.3)
        return {"request_id": x.item.request_id}

    lane = MapLane(slow)
    for name in ("first", "second", "third"):
        lane.put(loaded(name), None, lambda row, exc, n=name: heard.append(n))  # type: ignore[arg-type,misc]
    assert started.wait(5)
    assert lane.close(5)
    assert heard == ["first"]  # the others stay unacknowledged: the broker redelivers them

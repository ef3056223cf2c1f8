"""The one retry policy: only a database outage is retried, after a pause that grows, never lost."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry
from sqlalchemy.exc import IntegrityError, OperationalError

from worker import classify_task, deadletter, outage
from worker.tasks import classify_one

DOWN = OperationalError("SELECT 1", {}, Exception("connection refused"))


class FakeRequest:
    """What ClassifyTask uses of a Celery request: its message and how it ended."""

    def __init__(self, request_id: str, kwargs: Any) -> None:
        self.id, self.name, self.args, self.kwargs = request_id, "crackq.classify", (), kwargs
        self.events: list[str] = []
        self.acked = self.requeued = False
        self.message = None  # no broker channel: worker.acks acks it on its own

    @property
    def acknowledged(self) -> bool:
        return self.acked

    def send_event(self, kind: str, **_: Any) -> None:
        self.events.append(kind)

    def acknowledge(self) -> None:
        self.acked = True

    def reject(self, requeue: bool = False) -> None:
        self.requeued = requeue


def batch(n: int, prefix: str = "r") -> list[FakeRequest]:
    return [FakeRequest(f"{prefix}{i}", {"image_ref": f"/x/{i}.jpg"}) for i in range(n)]


def stored(items: list[Any]) -> SimpleNamespace:
    rows = [{"request_id": i.request_id, "status": "succeeded", "label": "crack",
             "confidence": 0.9} for i in items]  # fmt: skip
    return SimpleNamespace(rows=rows, to_map=[], classifier=None)


def serve(monkeypatch: pytest.MonkeyPatch, classify: Any) -> None:
    """Give the task a runtime whose pipeline is `classify`."""
    runtime = SimpleNamespace(classify=classify)
    monkeypatch.setattr(classify_task, "get_runtime", lambda: runtime)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(outage.time, "sleep", slept.append)
    classify_one.streak.ended()
    return slept


def test_an_outage_requeues_the_batch_after_a_pause_that_grows(monkeypatch, sleeps) -> None:
    def down(items: list[Any]) -> None:
        raise DOWN

    serve(monkeypatch, down)
    first, second = batch(3), batch(2, "s")
    classify_one.run_batch(first)
    classify_one.run_batch(second)
    assert sleeps == [1.0, 2.0]
    assert all(r.requeued and not r.acked for r in first + second)
    serve(monkeypatch, stored)
    back = batch(2, "b")
    classify_one.run_batch(back)  # stored: acked, and the streak is over
    assert all(r.acked and r.events[-1] == "task-succeeded" for r in back)
    serve(monkeypatch, down)
    classify_one.run_batch(batch(1, "again"))
    assert sleeps == [1.0, 2.0, 1.0]


def test_other_errors_are_not_retried_but_dead_lettered_one_by_one(monkeypatch, sleeps) -> None:
    letters: list[str] = []
    monkeypatch.setattr(deadletter, "record", lambda task_id, *_: letters.append(task_id) or True)

    def broken(items: list[Any]) -> None:
        raise IntegrityError("INSERT", {}, Exception("a constraint"))

    serve(monkeypatch, broken)
    requests = batch(2)
    classify_one.run_batch(requests)
    assert letters == ["r0", "r1"] and sleeps == []
    assert all(r.acked and not r.requeued for r in requests)


def test_a_dead_letter_the_database_cannot_take_goes_back_to_the_queue(monkeypatch, sleeps) -> None:
    monkeypatch.setattr(deadletter, "record", lambda *_: False)
    bad = FakeRequest("bad", {"colour": "red"})
    classify_one.run_batch([bad])
    assert bad.requeued and not bad.acked and sleeps == [1.0]


def test_a_task_celery_runs_retries_only_an_outage_with_the_same_pauses() -> None:
    retries: list[float] = []

    def retry(countdown: float, max_retries: Any) -> Retry:
        assert max_retries is None  # an outage is waited out, however long
        retries.append(countdown)
        return Retry()

    task = SimpleNamespace(name="t", request=SimpleNamespace(id="x", retries=2), retry=retry)
    with pytest.raises(Retry), outage.retried(task):
        raise DOWN
    assert retries == [outage.pause_s(3)] == [4.0]
    with pytest.raises(ValueError), outage.retried(task):
        raise ValueError("a bug is not retried")
    assert [outage.pause_s(n) for n in (1, 2, 5, 50)] == [1.0, 2.0, 10.0, 10.0]

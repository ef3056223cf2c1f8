"""Training runs: claimed once, kept alive by heartbeats, failed by exactly one sweeper when dead."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from db import runs

pytestmark = pytest.mark.usefixtures("clean_tables")


def queued(sessions, run_id: str) -> None:
    with sessions() as s, s.begin():
        runs.create_run(s, run_id, {"recipe": {}}, {})


def age_heartbeat(engine, run_id: str, seconds: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE training_runs SET heartbeat_at = now() - make_interval(secs => :s) "
                "WHERE run_id = :r"
            ),
            {"s": seconds, "r": run_id},
        )


def test_two_claims_racing_for_one_run_give_it_to_exactly_one(sessions) -> None:
    queued(sessions, "r1")
    barrier, won = threading.Barrier(8), []

    def claim(i: int) -> None:
        with sessions() as s, s.begin():
            barrier.wait()
            if runs.claim_run(s, "r1", f"w{i}") is not None:
                won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    with sessions() as s:
        row = runs.get_run(s, "r1")
    assert (row.status, row.worker) == ("running", f"w{won[0]}")
    assert row.heartbeat_at is not None and row.started_at is not None


def test_a_run_without_heartbeat_is_failed_once_with_the_reason(sessions, engine) -> None:
    queued(sessions, "dead")
    queued(sessions, "alive")
    with sessions() as s, s.begin():
        runs.claim_run(s, "dead", "training-1@host")
        runs.claim_run(s, "alive", "training-2@host")
    age_heartbeat(engine, "dead", 200)
    results: list[list[tuple[str, str]]] = []
    barrier = threading.Barrier(4)

    def sweep() -> None:
        with sessions() as s, s.begin():
            barrier.wait()
            results.append(runs.fail_dead_runs(s, 150))

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [f for r in results for f in r]
    assert [run_id for run_id, _ in failed] == ["dead"]
    with sessions() as s:
        dead, alive = runs.get_run(s, "dead"), runs.get_run(s, "alive")
    assert dead.status == "failed" and dead.finished_at is not None
    assert dead.message.startswith("worker died: no heartbeat since ")
    assert "training-1@host" in dead.message
    assert alive.status == "running"


def test_a_swept_run_stops_beating_and_keeps_the_sweepers_outcome(sessions, engine) -> None:
    queued(sessions, "r")
    with sessions() as s, s.begin():
        runs.claim_run(s, "r", "w")
        assert runs.beat(s, "r") is True
    age_heartbeat(engine, "r", 500)
    with sessions() as s, s.begin():
        assert len(runs.fail_dead_runs(s, 150)) == 1
        assert runs.beat(s, "r") is False
        assert runs.finish_run(s, "r", "succeeded", message="too late") is False
        # a run already claimed is never claimed again
        assert runs.claim_run(s, "r", "w2") is None
    with sessions() as s:
        assert runs.get_run(s, "r").status == "failed"

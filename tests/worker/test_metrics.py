"""Metrics and health against real Redis, PostgreSQL and HTTP: queue depth, counts, probes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from prometheus_client import CollectorRegistry, generate_latest

from db.session import make_engine, make_sessionmaker
from harness.procs import free_port
from harness.scrape import Samples, parse
from tests.worker.brokering import channel_on, row, take
from worker import health, metrics, opsserver
from worker.enqueue import send

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.fixture
def broker(redis_client) -> Iterator[Any]:
    with channel_on(redis_client) as channel:
        yield channel


def samples(registry: CollectorRegistry) -> Samples:
    """Every sample of one scrape, parsed back from the text format Prometheus reads."""
    return parse(generate_latest(registry).decode())


def test_queue_depth_counts_waiting_and_unacked_per_queue(broker, redis_client) -> None:
    from worker.app import app

    take(broker, ["a", "b"])  # a worker holds two
    send(app, [row(i) for i in ("c", "d", "e")])  # three wait
    depth = metrics.queue_depth(redis_client, ["inference", "training"])
    assert depth == {
        ("inference", "waiting"): 3,
        ("inference", "unacked"): 2,
        ("training", "waiting"): 0,
        ("training", "unacked"): 0,
    }
    assert redis_client.llen("inference") == 3 and redis_client.hlen("unacked") == 2


def test_scrape_reports_rows_runs_and_queues_from_the_sources(
    broker, redis_client, sessions
) -> None:
    from db import results, runs
    from worker.app import app

    now = dt.datetime.now(dt.timezone.utc)
    outcome = {"submitted_at": now, "started_at": now, "finished_at": now}
    with sessions() as session, session.begin():
        results.insert_queued(session, [row("q1")])
        results.write_outcomes(
            session,
            [
                {**row("ok1"), **outcome, "status": "succeeded", "label": "crack"},
                {**row("ok2"), **outcome, "status": "succeeded", "label": "no_crack"},
                {**row("bad"), **outcome, "status": "failed", "error_code": "not_an_image"},
            ],
        )
        runs.create_run(session, "r1", {}, {})
        runs.update_run(
            session,
            "r1",
            status="running",
            progress={"step": 30, "steps": 120, "images_per_s": 7.5},
        )
    send(app, [row("w1")])
    registry = CollectorRegistry()
    registry.register(
        metrics.SystemCollector(redis_client, sessions, ["inference", "training"], lambda: None)
    )
    got = samples(registry)
    assert got[("crackq_results", (("error_code", ""), ("status", "queued")))] == 1
    assert got[("crackq_results", (("error_code", ""), ("status", "succeeded")))] == 2
    assert got[("crackq_results", (("error_code", "not_an_image"), ("status", "failed")))] == 1
    assert got[("crackq_queue_messages", (("queue", "inference"), ("state", "waiting")))] == 1
    assert got[("crackq_training_runs", (("status", "running"),))] == 1
    assert got[("crackq_training_progress_ratio", (("run_id", "r1"),))] == 0.25
    assert got[("crackq_training_images_per_second", (("run_id", "r1"),))] == 7.5
    assert got[("crackq_dead_letters_waiting", ())] == 0
    assert got[("crackq_source_up", (("source", "broker"),))] == 1
    assert got[("crackq_source_up", (("source", "database"),))] == 1


def test_statuses_with_no_rows_read_zero_so_their_series_do_not_go_stale(
    redis_client, sessions
) -> None:
    """Once the last queued row is final, crackq_results{status="queued"} must say 0, not
    vanish: Prometheus would keep the last non-zero value and an alert on it never clears."""
    registry = CollectorRegistry()
    registry.register(metrics.SystemCollector(redis_client, sessions, ["inference"], lambda: None))
    got = samples(registry)
    for status in ("queued", "succeeded", "failed"):
        assert got[("crackq_results", (("error_code", ""), ("status", status)))] == 0
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert got[("crackq_training_runs", (("status", status),))] == 0


def test_a_source_away_leaves_its_gauges_out_and_says_so(sessions) -> None:
    away = redis.Redis(port=free_port(), socket_timeout=1, socket_connect_timeout=1)
    registry = CollectorRegistry()
    registry.register(metrics.SystemCollector(away, sessions, ["inference"], lambda: None))
    got = samples(registry)
    assert got[("crackq_source_up", (("source", "broker"),))] == 0
    assert got[("crackq_source_up", (("source", "database"),))] == 1
    assert not any(name == "crackq_queue_messages" for name, _ in got)


def test_stored_rows_are_counted_with_their_latency() -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    t = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)
    latency = value("crackq_latency_seconds_sum", mode="patch")
    failed = value("crackq_rows_stored_total", status="failed", error_code="fetch_timeout")
    metrics.stored(
        [
            {"status": "succeeded", "submitted_at": t, "finished_at": t + dt.timedelta(seconds=2)},
            {"status": "failed", "error_code": "fetch_timeout", "submitted_at": None},
        ]
    )
    assert value("crackq_latency_seconds_sum", mode="patch") - latency == 2.0
    assert (
        value("crackq_rows_stored_total", status="failed", error_code="fetch_timeout") == failed + 1
    )


def test_health_checks_name_what_does_not_answer(database_url: str) -> None:
    dead_pg = make_sessionmaker(
        make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x")
    )
    dead_redis = redis.Redis(port=free_port(), socket_timeout=1, socket_connect_timeout=1)
    checks = [
        health.broker_check(dead_redis),
        health.database_check(dead_pg),
        health.model_check(None),
        health.consuming_check("reconnecting"),
    ]
    ready, body = health.report(checks)
    assert not ready
    assert {name: c["ok"] for name, c in body["checks"].items()} == {
        "broker": False,
        "database": False,
        "model": False,
        "consuming": False,
    }
    assert "Connection" in body["checks"]["broker"]["detail"]
    assert "refused" in body["checks"]["database"]["detail"]


def test_endpoint_serves_metrics_health_and_readiness_and_moves_off_a_taken_port() -> None:
    state = {"ready": False}

    def checks() -> list[health.Check]:
        return [health.Check("model", state["ready"], "v1" if state["ready"] else "loading")]

    registry = CollectorRegistry()
    metrics_text = "crackq_example 1.0"
    from prometheus_client import Gauge

    Gauge("crackq_example", "x", registry=registry).set(1)
    app = opsserver.make_app(checks, registry)
    first, port = opsserver.serve("127.0.0.1", free_port(), app)
    second, port2 = opsserver.serve("127.0.0.1", port, app)  # a second worker on the host
    try:
        assert port2 != port
        base = f"http://127.0.0.1:{port2}"
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"alive": True}
        r = requests.get(f"{base}/readyz", timeout=5)
        assert r.status_code == 503 and r.json()["checks"]["model"]["detail"] == "loading"
        state["ready"] = True
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        assert metrics_text in requests.get(f"{base}/metrics", timeout=5).text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    finally:
        for server in (first, second):
            server.shutdown()
            server.server_close()


def test_consumer_state_follows_the_worker() -> None:
    state = opsserver.ConsumerState()
    assert state() == "starting"

    class Consumer:
        connection: object | None = object()
        task_consumer: object | None = None

    state.consumer = Consumer()
    assert state() == "reconnecting"
    state.consumer.task_consumer = object()
    assert state() == "ready"
    state.consumer.connection = None  # the broker went away
    assert state() == "reconnecting"
    state.stopping = True
    assert state() == "stopping"


def test_run_progress_reads_what_the_loop_reports() -> None:
    assert metrics.run_progress({"step": 10, "steps": 40, "images_per_s": 3}) == (0.25, 3.0)
    assert metrics.run_progress({"event": "start"}) == (None, None)


def test_the_dashboard_plots_only_metrics_a_worker_exposes(redis_client, sessions) -> None:
    import json
    import re
    import types

    from prometheus_client import REGISTRY

    from harness.procs import ROOT

    model = types.SimpleNamespace(version="v1", serving="openvino int8")
    registry = CollectorRegistry()
    for instrument in vars(metrics).values():
        if isinstance(instrument, metrics.Counter | metrics.Histogram):
            registry.register(instrument)
    registry.register(
        metrics.SystemCollector(redis_client, sessions, ["inference"], lambda: model)  # type: ignore[arg-type,return-value]
    )
    exposed = {f.name for f in registry.collect()} | {f.name for f in REGISTRY.collect()}
    board = json.loads((ROOT / "ops" / "grafana" / "dashboards" / "crackq.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:crackq|process)_[a-z_]+", e)}
    assert len(used) >= 10
    suffixes = ("_total", "_bucket", "_sum", "_count", "_info")

    def known(m: str) -> bool:
        return m in exposed or any(m.endswith(s) and m.removesuffix(s) in exposed for s in suffixes)

    assert [m for m in sorted(used) if not known(m)] == []

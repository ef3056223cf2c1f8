"""The operations endpoint of a worker: /metrics (Prometheus), /healthz and /readyz.

Started when Celery's consumer is ready and stopped at shutdown (worker/tasks.py connects
the signals), on CRACKQ_METRICS_ADDRESS:CRACKQ_METRICS_PORT; when that port is taken (a
second worker on the host) the next free one of the following 15 is used and logged.
`/healthz` answers 200 while the process serves HTTP at all (liveness); `/readyz` answers
200 only when every check of worker/health.py passes, else 503, with the checks as JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from sqlalchemy.orm import Session, sessionmaker

from worker import health
from worker.app import INFERENCE_QUEUE, TRAINING_QUEUE
from worker.metrics import SystemCollector
from worker.runtime import current_runtime
from worker.settings import Settings

log = logging.getLogger(__name__)

PORT_TRIES = 16
Checks = Callable[[], list[health.Check]]


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = False  # a second worker must not bind the first one's port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not log lines
        pass


def make_app(checks: Checks, registry: Any = REGISTRY) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: /metrics from `registry`, /healthz, /readyz from `checks`."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, 200, {"alive": True})
        if path == "/readyz":
            ready, body = health.report(checks())
            return _json(start_response, 200 if ready else 503, body)
        return _json(start_response, 404, {"error": f"no {path}: try /metrics, /healthz, /readyz"})

    return app


def _json(start_response: Callable[..., Any], code: int, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
    start_response(
        f"{code} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def serve(
    address: str, port: int, app: Callable[..., Iterable[bytes]], tries: int = PORT_TRIES
) -> tuple[_Server, int]:
    """Bind `port` or the next free one of `tries`, serve in a daemon thread."""
    error: OSError | None = None
    for candidate in range(port, port + tries):
        try:
            server = make_server(address, candidate, app, _Server, _QuietHandler)
        except OSError as exc:
            error = exc
            continue
        thread = threading.Thread(target=server.serve_forever, name="crackq-ops-http", daemon=True)
        thread.start()
        return server, candidate
    raise OSError(f"ports {port}-{port + tries - 1} on {address} are all taken: {error}")


class ConsumerState:
    """What readiness says of Celery's consumer: starting, ready, reconnecting, stopping."""

    def __init__(self) -> None:
        self.consumer: Any = None
        self.stopping = False

    def __call__(self) -> str:
        if self.stopping:
            return "stopping"
        if self.consumer is None:
            return "starting"
        # Celery drops its connection at once when the broker goes away and sets the new
        # one once connected again; the task consumer exists from the first start
        if (
            getattr(self.consumer, "connection", None) is None
            or getattr(self.consumer, "task_consumer", None) is None
        ):
            return "reconnecting"
        return "ready"


class OpsServer:
    """The endpoint of one worker process, its checks and its scrape-time collector."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], consume_from: Iterable[str]
    ) -> None:
        import redis

        self.settings, self.sessions = settings, sessions
        self.needs_model = INFERENCE_QUEUE in set(consume_from)
        self.redis = redis.Redis.from_url(
            settings.broker(), socket_timeout=2, socket_connect_timeout=2
        )
        self.state = ConsumerState()
        self.collector = SystemCollector(
            self.redis, sessions, (INFERENCE_QUEUE, TRAINING_QUEUE), _served, settings.metrics_db_s
        )
        self.server: _Server | None = None
        self.port = 0

    def checks(self) -> list[health.Check]:
        found = [health.broker_check(self.redis), health.database_check(self.sessions)]
        if self.needs_model:
            model = _served()
            found.append(health.model_check(model.version if model else None))
        return [*found, health.consuming_check(self.state())]

    def start(self) -> OpsServer:
        self.server, self.port = serve(
            self.settings.metrics_address, self.settings.metrics_port, make_app(self.checks)
        )
        REGISTRY.register(self.collector)
        log.info(
            "metrics and health on http://%s:%d (/metrics, /healthz, /readyz)",
            self.settings.metrics_address,
            self.port,
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with contextlib.suppress(KeyError):  # never registered: start failed to bind
            REGISTRY.unregister(self.collector)
        self.redis.close()


def _served() -> Any:
    """The model this process serves, or None before (or without) a runtime."""
    rt = current_runtime()
    return rt.classifier() if rt is not None else None


_ops: OpsServer | None = None


def start(settings: Settings, sessions: sessionmaker[Session], consume_from: Iterable[str]) -> None:
    """Start this process's endpoint once (CRACKQ_METRICS_PORT=0: none); never fatal."""
    global _ops
    if _ops is not None or settings.metrics_port == 0:
        return
    try:
        _ops = OpsServer(settings, sessions, consume_from).start()
    except OSError as exc:
        log.error("no metrics or health endpoint: %s", exc)


def url() -> str | None:
    """This process's endpoint, e.g. http://127.0.0.1:9808, or None without one."""
    if _ops is None:
        return None
    return f"http://{_ops.settings.metrics_address}:{_ops.port}"


def consumer_ready(consumer: Any) -> None:
    if _ops is not None:
        _ops.state.consumer = consumer


def stopping() -> None:
    """Readiness turns false at once when a warm shutdown begins."""
    if _ops is not None:
        _ops.state.stopping = True


def stop() -> None:
    global _ops
    if _ops is not None:
        _ops.stop()
        _ops = None

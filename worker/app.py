"""The Celery app: Redis broker, JSON only, explicit queues, routes and delivery semantics."""

from __future__ import annotations

import faulthandler
import os
from typing import Any

from celery import Celery
from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

from worker.settings import Settings, get_settings

# Evidence on every native crash: a segfault in torch, OpenVINO or a decoder prints every
# thread's Python stack to stderr (the worker's log) before the process dies, and every
# process started from this one (the INT8 child, `celery` exec'd by `crackq worker`) does too.
if not faulthandler.is_enabled():  # pytest enables its own
    faulthandler.enable()
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

# kombu picks the transport class by the URL's scheme: redis:// gets kombu's Redis transport
# with the batch receive of worker.transport (CRACKQ_BATCH_RECEIVE). rediss:// keeps kombu's
# own class, from whose scheme kombu turns TLS on.
TRANSPORT_ALIASES["redis"] = "worker.transport:Transport"

INFERENCE_QUEUE = "inference"
TRAINING_QUEUE = "training"
CLASSIFY_TASK = "crackq.classify"
CLASSIFY_MANY_TASK = "crackq.classify_many"
FINE_TUNE_TASK = "crackq.fine_tune"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration derived from crackq's settings; nothing else configures Celery."""
    broker = settings.broker()
    exchange = Exchange("crackq", type="direct")
    return {
        "broker_url": broker,
        # Results live in PostgreSQL; the result backend only carries training progress
        # (task state meta shown by Flower) for tasks that opt in.
        "result_backend": broker,
        "task_ignore_result": True,
        "result_expires": 7 * 24 * 3600,
        # JSON only: a pickle payload is refused before it is ever deserialised.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_queues": (
            Queue(INFERENCE_QUEUE, exchange, routing_key=INFERENCE_QUEUE),
            Queue(TRAINING_QUEUE, exchange, routing_key=TRAINING_QUEUE),
        ),
        "task_default_queue": INFERENCE_QUEUE,
        "task_default_exchange": "crackq",
        "task_default_routing_key": INFERENCE_QUEUE,
        "task_create_missing_queues": False,
        "task_routes": {
            CLASSIFY_TASK: {"queue": INFERENCE_QUEUE, "routing_key": INFERENCE_QUEUE},
            CLASSIFY_MANY_TASK: {"queue": INFERENCE_QUEUE, "routing_key": INFERENCE_QUEUE},
            FINE_TUNE_TASK: {"queue": TRAINING_QUEUE, "routing_key": TRAINING_QUEUE},
        },
        # Visibility timeout set on purpose: a message whose worker died unacked comes back
        # after this long. It must exceed the longest batch (seconds here), and training
        # messages are acked early so a long run is never redelivered and repeated.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "batch_receive": settings.batch_receive,
        },
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 0,
        # Flower sees every state.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Undecodable (e.g. pickle), unknown and invalid messages land in dead_letters.
        "worker_consumer": "worker.deadletter:DeadLetterConsumer",
        "enable_utc": True,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` with crackq's tasks registered."""
    app = Celery("crackq")
    app.conf.update(celery_config(settings or get_settings()))
    app.conf.imports = ("worker.tasks",)
    return app


app = create_app()

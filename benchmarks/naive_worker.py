"""The naive worker the issue compares against: prefork, one image per task, fp32, a commit per row.

A tiny Celery app of its own on crackq's broker (queue `naive`, JSON). Each of its 2
prefork children runs torch on one thread, classifies one photo per message with a
float32 NCHW ResNet50 and INSERTs + commits one row into the same `results` table.
Start it with `celery -A benchmarks.naive_worker worker -Q naive -P prefork -c 2`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from typing import Any

from celery import Celery, signals
from kombu import Queue

log = logging.getLogger(__name__)
QUEUE = "naive"
TASK = "bench.naive_classify"

app = Celery("crackq-naive", broker=os.environ.get("CRACKQ_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_queues=(Queue(QUEUE, routing_key=QUEUE),),
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)

_state: dict[str, Any] = {}


@signals.worker_process_init.connect
def _init_child(**_: Any) -> None:
    """Per child, after the fork: one torch thread, an fp32 model, a database engine."""
    import torch
    from sqlalchemy import create_engine

    from models.network import build_model
    from models.numerics import resolve_numerics
    from models.serving import Classifier

    torch.set_num_threads(1)
    numerics = resolve_numerics("cpu", "fp32", channels_last=False)
    _state["classifier"] = Classifier(build_model(), numerics, version="naive-fp32")
    _state["engine"] = create_engine(os.environ["CRACKQ_DATABASE_URL"])
    log.info("naive child %d ready", os.getpid())  # the benchmark times from here


@app.task(name=TASK)
def naive_classify(image_ref: str, request_id: str, submitted_at: str | None = None) -> None:
    """Decode, predict a batch of one, INSERT the row and commit."""
    from PIL import Image
    from sqlalchemy.orm import Session

    from db.tables import Result
    from models.network import CRACK_INDEX
    from models.transforms import EvalPreset, stack

    started = dt.datetime.now(dt.timezone.utc)
    with Image.open(image_ref) as img:
        pixels = EvalPreset(224)(img.convert("RGB"))
    p = float(_state["classifier"].predict(stack([pixels]))[0, CRACK_INDEX])
    with Session(_state["engine"]) as session:
        session.add(
            Result(
                request_id=request_id,
                image_ref=image_ref,
                batch_id="bench-naive",
                status="succeeded",
                label="crack" if p >= 0.5 else "no_crack",
                crack_probability=p,
                confidence=max(p, 1.0 - p),
                model_version="naive-fp32",
                batch_size=1,
                worker_host=socket.gethostname(),
                submitted_at=dt.datetime.fromisoformat(submitted_at) if submitted_at else None,
                started_at=started,
                finished_at=dt.datetime.now(dt.timezone.utc),
            )
        )
        session.commit()

"""Per-process resources (engine, model, thread pools), built lazily after any fork."""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import torch
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_sessionmaker
from models.classifier import Classifier, resolve_numerics
from models.openvino_backend import resolve_backend
from worker.modelstore import ModelHolder, ModelSource, build_classifier, choose_source
from worker.settings import Settings, get_settings
from worker.sources import SourceLimits

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a worker process needs to classify: built once per process."""

    settings: Settings
    sessions: sessionmaker[Session]
    models: ModelHolder
    limits: SourceLimits
    decode_pool: ThreadPoolExecutor
    forward_lock: threading.Lock
    hostname: str

    def classifier(self) -> Classifier:
        return self.models.current()

    def close(self) -> None:
        self.models.stop()
        self.decode_pool.shutdown(wait=True, cancel_futures=True)


_runtime: Runtime | None = None
_runtime_pid: int | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's Runtime, built on first use (after fork, never in a parent)."""
    global _runtime, _runtime_pid
    if _runtime is not None and _runtime_pid == os.getpid():
        return _runtime
    with _lock:
        if _runtime is None or _runtime_pid != os.getpid():
            _runtime = build_runtime(get_settings())
            _runtime_pid = os.getpid()
    return _runtime


def current_runtime() -> Runtime | None:
    """The process's Runtime if it has been built, without building it."""
    return _runtime if _runtime_pid == os.getpid() else None


_sessions: tuple[int, sessionmaker[Session]] | None = None


def get_sessions() -> sessionmaker[Session]:
    """This process's sessionmaker (its own engine and pool; never shared across a fork)."""
    global _sessions
    if _sessions is None or _sessions[0] != os.getpid():
        settings = get_settings()
        engine = make_engine(settings.database(), pool_size=max(2, settings.decode_threads))
        _sessions = (os.getpid(), make_sessionmaker(engine))
    return _sessions[1]


def build_runtime(settings: Settings) -> Runtime:
    """Connect to the database and load the served model for this process."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    sessions = get_sessions()
    numerics = resolve_numerics(
        settings.device,
        settings.precision,
        settings.channels_last,
        settings.compile,
        settings.cuda_graphs,
    )

    def pick() -> ModelSource:
        return choose_source(settings.model_checkpoint, sessions)

    backend = resolve_backend(settings.backend, numerics.device)
    load = partial(
        build_classifier,
        numerics=numerics,
        pretrained=settings.pretrained,
        backend=backend,
        threads=settings.torch_threads,
        max_batch=settings.batch_size,
        int8=settings.int8 == "auto",
    )
    models = ModelHolder(load, pick)
    models.current().warm_up()
    models.start_polling(settings.model_poll_s)
    log.info(
        "runtime ready: model %s, %s, batch %d, %d torch threads",
        models.current().version,
        models.current().serving,
        settings.batch_size,
        torch.get_num_threads(),
    )
    return Runtime(
        settings=settings,
        sessions=sessions,
        models=models,
        limits=SourceLimits.from_settings(settings),
        decode_pool=ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="crackq-decode"),
        forward_lock=threading.Lock(),
        hostname=socket.gethostname(),
    )

"""A worker process's model versions: one loader for all, and the thread that follows the registry.

The promoted version (worker.modelstore.ModelHolder), the shadow (worker.shadow) and a
re-score's version (worker.rescoremodels) all load through `model_loader`, with the same
numerics, backend and model cache. `ModelPoller` switches to a newly promoted version and
follows the shadow setting; worker.runtime builds and closes them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from models.numerics import resolve_numerics
from models.openvino_backend import resolve_backend
from models.serving import Classifier
from worker.modelstore import (
    ModelHolder,
    ModelSource,
    build_classifier,
    choose_source,
    load_error_recorder,
)
from worker.settings import Settings
from worker.shadow import ShadowHolder


class ModelPoller:
    """The thread that switches to a newly promoted model and follows the shadow setting
    (worker.shadow, first at once: a restarted worker shadows again); stopped and joined
    on close."""

    def __init__(
        self, models: ModelHolder, every_s: float, shadow: ShadowHolder | None = None
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop,
            args=(models, every_s, shadow),
            name="crackq-model-poll",
            daemon=True,
        )
        self._thread.start()

    def _loop(self, models: ModelHolder, every_s: float, shadow: ShadowHolder | None) -> None:
        if shadow is not None:
            shadow.check_once()
        while not self._stop.wait(every_s):
            models.check_once()
            if shadow is not None:
                shadow.check_once()

    def stop(self, timeout_s: float) -> bool:
        """Stop polling and wait for a model load in progress; False if it outlasted timeout_s."""
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def model_loader(settings: Settings) -> Callable[[ModelSource], Classifier]:
    """How this process loads a version to serve (the promoted one, the shadow, a re-score's)."""
    numerics = resolve_numerics(
        settings.device,
        settings.precision,
        settings.channels_last,
        settings.compile,
        settings.cuda_graphs,
    )
    return partial(
        build_classifier,
        numerics=numerics,
        pretrained=settings.pretrained,
        backend=resolve_backend(settings.backend, numerics.device),
        threads=settings.torch_threads,
        max_batch=settings.batch_size,
        int8=settings.int8 == "auto",
        dense_overlap=settings.map_overlap if settings.map_engine == "dense" else None,
    )


def load_models(
    settings: Settings,
    sessions: sessionmaker[Session],
    load: Callable[[ModelSource], Classifier],
) -> ModelHolder:
    """The served model (explicit checkpoint, else the registry's), loaded and warmed up."""

    def pick() -> ModelSource:
        return choose_source(settings.model_checkpoint, sessions)

    worker = f"{socket.gethostname()}:{os.getpid()}"  # who could not load a version
    models = ModelHolder(load, pick, on_load_error=load_error_recorder(sessions, worker))
    models.current().warm_up()
    return models

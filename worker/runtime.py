"""Per-process resources (engine, model, thread pools), built lazily after any fork."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_sessionmaker
from models.openvino_backend import release_core
from models.serving import Classifier
from worker.forward import Forward
from worker.jobs import Classified, Item, Loaded, MapPolicy, PipelineConfig, ReviewPolicy
from worker.maplane import Done, MapLane
from worker.mapping import map_photo
from worker.modelstore import ModelHolder
from worker.pipeline import classify
from worker.processmodels import ModelPoller, load_models, model_loader
from worker.rescorelane import RescoreLane
from worker.rescoremodels import RescoreModels
from worker.rescoring import rescore
from worker.settings import Settings, get_settings
from worker.shadow import ShadowHolder, shadow_choice
from worker.sources import SourceLimits

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a worker process needs to classify: built once per process."""

    sessions: sessionmaker[Session]
    models: ModelHolder
    poller: ModelPoller
    config: PipelineConfig
    decode_pool: ThreadPoolExecutor
    forward: Forward
    shadow: ShadowHolder | None = None
    rescore: RescoreModels | None = None
    lane: MapLane = field(init=False)
    rescore_lane: RescoreLane = field(init=False)
    pid: int = field(default_factory=os.getpid)
    closed: bool = False

    def __post_init__(self) -> None:
        self.lane = MapLane(self.map_one)
        self.rescore_lane = RescoreLane()

    def classifier(self) -> Classifier:
        return self.models.current()

    def classify(self, items: Sequence[Item]) -> Classified:
        """The pipeline with this process's model, sessions, settings and thread pool.

        Photos to map come back in `to_map`: hand them to `map_later` (or `map_one`).
        Re-scores (items naming a version, all the same) are answered by that version,
        decoded in this thread (the decode pool stays free for live photos) and go
        through the forward thread after live photos, like map tiles.
        """
        classifier = self.models.current()  # taken once: a model switch never splits a batch
        shadow = self.shadow.current() if self.shadow is not None else None
        version = items[0].rescore_version if items else None
        if version is not None:
            if any(item.rescore_version != version for item in items):
                raise ValueError("a batch re-scores with one version (ClassifyTask groups them)")
            if self.rescore is None:
                raise RuntimeError("this runtime has no re-score models")
            held = shadow.classifier if shadow is not None else None
            found = self.rescore.get(version, classifier, held)
            return rescore(items, found, self.sessions, self.config, self.forward)
        return classify(
            items,
            classifier,
            self.sessions,
            self.config,
            pool=self.decode_pool,
            forward=self.forward,
            shadow=shadow,
        )

    def classify_all(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        """classify, then map its big photos in this thread: every item's row, when done."""
        done = self.classify(items)
        return [*done.rows, *(self.map_one(x, done.classifier) for x in done.to_map)]

    def map_one(self, loaded: Loaded, classifier: Classifier) -> dict[str, Any]:
        """Map one photo with `classifier` (the model its batch was answered by)."""
        shadow = self.shadow.current() if self.shadow is not None else None
        if loaded.item.rescore_version is not None:
            shadow = None  # a shadow scores live photos only
        return map_photo(loaded, classifier, self.sessions, self.config, self.forward, shadow)

    def map_later(self, loaded: Loaded, classifier: Classifier, done: Done) -> None:
        """Queue a photo for the map lane; `done(row, error)` is called once it is stored."""
        self.lane.put(loaded, classifier, done)

    def close(self, timeout_s: float = 120.0) -> None:
        """Release everything native in order, on the thread that built the runtime.

        The poller first (a model it is loading finishes), then the map lane (the photo it
        maps finishes; photos waiting stay unacked for redelivery), the decode pool, the
        forward thread, the served model, then the shared OpenVINO Core.
        Left to the interpreter's exit instead, they were torn down in no set order while
        the poll thread could still be compiling (std::terminate, SIGABRT). Called by the
        worker_shutdown hook once Celery's pool has drained, and at exit; idempotent.
        """
        if self.closed or self.pid != os.getpid():
            return
        self.closed = True
        started = time.monotonic()
        if not self.poller.stop(timeout_s):
            log.error("a model load outlasted %.0f s: leaving the model to the exit", timeout_s)
            return
        if not self.lane.close(timeout_s):
            log.error("a crack map outlasted %.0f s: leaving the model to the exit", timeout_s)
            return
        if not self.rescore_lane.close(timeout_s):
            log.error("a re-score outlasted %.0f s: leaving the model to the exit", timeout_s)
            return
        self.decode_pool.shutdown(wait=True, cancel_futures=True)
        if not self.forward.close(timeout_s):
            log.error("a forward pass outlasted %.0f s: leaving the model to the exit", timeout_s)
            return
        if self.shadow is not None:
            self.shadow.close()
        if self.rescore is not None:
            self.rescore.close()
        served = self.models.current()
        served.close()
        release_core()
        log.info(
            "runtime closed: released %s in %.1f s", served.version, time.monotonic() - started
        )


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
            atexit.register(close_runtime)  # a backstop: Celery's hook closes it first
    return _runtime


def current_runtime() -> Runtime | None:
    """The process's Runtime if it has been built, without building it."""
    return _runtime if _runtime_pid == os.getpid() else None


def close_runtime() -> None:
    """Close this process's Runtime if it was built (worker shutdown, exit); idempotent."""
    rt = current_runtime()
    if rt is not None:
        rt.close()


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
    load = model_loader(settings)
    models = load_models(settings, sessions, load)
    shadow = ShadowHolder(load, partial(shadow_choice, sessions))
    log.info(
        "runtime ready: model %s, %s, batch %d, %d torch threads",
        models.current().version,
        models.current().serving,
        settings.batch_size,
        torch.get_num_threads(),
    )
    return Runtime(
        sessions=sessions,
        models=models,
        poller=ModelPoller(models, settings.model_poll_s, shadow),
        config=pipeline_config(settings),
        decode_pool=ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="crackq-decode"),
        forward=Forward(
            settings.batch_size,
            settings.map_busy_batch,
            rescore_share=settings.rescore_busy_share,
        ),
        shadow=shadow,
        rescore=RescoreModels(load, sessions),
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    """What the pipeline reads from the settings, once per process."""
    return PipelineConfig(
        limits=SourceLimits.from_settings(settings),
        max_pixels=settings.max_image_pixels,
        formats=tuple(settings.image_formats),
        hostname=socket.gethostname(),
        maps=MapPolicy(
            min_side_factor=settings.map_min_side_factor,
            tile=settings.map_tile,
            overlap=settings.map_overlap,
            min_region_tiles=settings.map_min_region_tiles,
            time_budget_s=settings.map_time_budget_s,
            batch=settings.batch_size,
            engine=settings.map_engine,
            dense_block=settings.map_dense_block,
        ),
        review=ReviewPolicy(
            band=settings.review_band,
            sample_rate=settings.review_sample_rate,
            sample_per_hour=settings.review_sample_per_hour,
        )
        if settings.review
        else None,
    )

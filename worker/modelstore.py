"""Which model a worker serves, and switching to a newly promoted one without a restart."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db import registry
from db.tables import ModelVersion
from models.checkpoints import (
    CheckpointError,
    expected_sha256,
    load_checkpoint,
    model_from_checkpoint,
    serving_config,
)
from models.dense import MIN_DENSE_INPUT, dense_step
from models.dense_engine import dense_engine
from models.network import (
    PretrainedUnavailable,
    build_model,
    imagenet_available,
    load_imagenet_backbone,
)
from models.numerics import Numerics
from models.openvino_backend import OpenVINOClassifier
from models.quantize import INT8_KEY
from models.serving import Classifier
from worker.artifacts import local_path_of
from worker.modelcache import ModelCache, cache_from_settings
from worker.settings import get_settings

log = logging.getLogger(__name__)

RANDOM_INIT_VERSION = "untrained-random-init"
IMAGENET_HEAD_VERSION = "untrained-imagenet-backbone"


@dataclass(frozen=True)
class ModelSource:
    """Where the served weights come from; `version` is recorded on every result row.

    `checkpoint` is a local file; `uri` an artifact store URL (pg://, s3://), fetched into
    `cache` when the version is loaded.
    """

    version: str
    checkpoint: Path | None = None
    sha256: str | None = None
    uri: str | None = None
    cache: ModelCache | None = field(default=None, compare=False, repr=False)

    @property
    def trained(self) -> bool:
        return self.checkpoint is not None or self.uri is not None

    def local_checkpoint(self) -> Path:
        """The checkpoint as a local file: fetched through the cache when it is remote."""
        if self.checkpoint is not None:
            return self.checkpoint
        if self.uri is None or self.cache is None or self.sha256 is None:
            raise CheckpointError(f"model {self.version} has no checkpoint to load")
        return self.cache.path_for(self.uri, self.sha256)


def choose_source(
    checkpoint: Path | None,
    sessions: sessionmaker[Session] | None,
    cache: ModelCache | None = None,
) -> ModelSource:
    """An explicit checkpoint wins; else the registry's promoted version; else untrained.

    A registry row's URL that is a local path is read where it lies; any other goes
    through `cache` (by default the settings' model cache).
    """
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        return ModelSource(checkpoint.stem, checkpoint, expected_sha256(checkpoint))
    if sessions is not None:
        with sessions() as session:
            row = registry.promoted(session)
        if row is not None:
            return source_of(row, sessions, cache)
    return ModelSource(RANDOM_INIT_VERSION)


def source_of(
    row: ModelVersion, sessions: sessionmaker[Session], cache: ModelCache | None = None
) -> ModelSource:
    """A registry row's weights: a local path where it lies, any other URL through `cache`."""
    local = local_path_of(row.checkpoint_uri)
    if local is not None:
        return ModelSource(row.version, local, row.sha256)
    cache = cache or default_cache(sessions)
    return ModelSource(row.version, None, row.sha256, row.checkpoint_uri, cache)


_caches: dict[tuple[int, int], ModelCache] = {}


def default_cache(sessions: sessionmaker[Session]) -> ModelCache:
    """This process's model cache for `sessions`, from the settings (one per process)."""
    key = (os.getpid(), id(sessions))
    if key not in _caches:
        _caches[key] = cache_from_settings(get_settings(), sessions)
    return _caches[key]


def build_classifier(
    source: ModelSource,
    numerics: Numerics,
    pretrained: str,
    backend: str = "torch",
    threads: int = 0,
    max_batch: int = 32,
    int8: bool = False,
    dense_overlap: float | None = None,
) -> Classifier:
    """Load the weights `source` names (verified) and prepare them for inference.

    backend is a resolved one (see models.openvino_backend.resolve_backend). With `int8`,
    the OpenVINO backend serves the checkpoint's INT8 graph when it carries one. With
    `dense_overlap`, the same weights also get a fully convolutional map engine for that
    tile overlap (models.dense_engine; CRACKQ_MAP_ENGINE=dense).
    """

    def prepare(
        model: torch.nn.Module,
        version: str,
        size: int = 224,
        threshold: float = 0.5,
        graph: dict[str, Any] | None = None,
    ) -> Classifier:
        served: Classifier
        if backend == "openvino":
            served = OpenVINOClassifier(model, numerics, version, size, threshold, threads, graph)
        else:
            served = Classifier(model, numerics, version, size, threshold, max_batch)
        if dense_overlap is not None and size < MIN_DENSE_INPUT:
            log.warning(
                "%s: dense maps need a model input of at least %d px, this one is %d px; "
                "mapping tile by tile (CRACKQ_MAP_ENGINE)",
                version,
                MIN_DENSE_INPUT,
                size,
            )
        elif dense_overlap is not None:
            step = dense_step(size, dense_overlap)
            served.dense = dense_engine(model, numerics, backend, size, step, threads)
        return served

    if source.trained:
        payload = _load_verified(source)
        version = str(payload.get("version") or source.version)
        config = serving_config(payload)
        serve_int8 = int8 and backend == "openvino"
        graph = payload.get(INT8_KEY) if serve_int8 else None
        if serve_int8 and graph is None:
            log.info("%s has no INT8 graph (see CRACKQ_INT8); serving it in bf16/fp32", version)
        weights = model_from_checkpoint(payload)
        served = prepare(weights, version, config.image_size, config.threshold, graph)
        served.patch_size = config.patch_size or config.image_size
        return served
    version = RANDOM_INIT_VERSION
    model = None
    if pretrained == "always" or (pretrained == "auto" and imagenet_available()):
        try:
            model = load_imagenet_backbone(download=pretrained == "always")
            version = IMAGENET_HEAD_VERSION
        except PretrainedUnavailable:
            if pretrained == "always":
                raise
    if model is None:
        torch.manual_seed(0)  # every untrained worker predicts the same way
        model = build_model()
    log.warning(
        "NO TRAINED MODEL: serving %s; predictions are UNTRAINED and meaningless. "
        "Train one with `crackq finetune` (or `crackq demo`) or set CRACKQ_MODEL_CHECKPOINT.",
        version,
    )
    return prepare(model, version)


def _load_verified(source: ModelSource) -> dict[str, Any]:
    path = source.local_checkpoint()
    try:
        return load_checkpoint(path, source.sha256)
    except CheckpointError:
        if source.checkpoint is None and source.cache is not None and source.sha256:
            source.cache.forget(source.sha256)  # fetched again when it is next tried
        raise


class ModelHolder:
    """Holds the served classifier; a poller swaps in a newly promoted version.

    Batches take `current()` once and use that object throughout, so a swap never
    changes the model under a running batch and no task fails during the switch.
    """

    def __init__(
        self,
        load: Callable[[ModelSource], Classifier],
        pick: Callable[[], ModelSource],
        on_load_error: Callable[[ModelSource, str], None] | None = None,
    ):
        self._load = load
        self._pick = pick
        self._source = pick()
        self._current = load(self._source)
        _now_serving(self._source)
        self._lock = threading.Lock()
        self._registry_down = False  # log an outage once, not on every poll
        # A version that failed to load is not read, hashed and converted again on every
        # poll: only a different promoted version (or a restart) is tried.
        self._failed: ModelSource | None = None
        self._on_load_error = on_load_error

    def current(self) -> Classifier:
        return self._current

    def check_once(self) -> bool:
        """Load and switch to the promoted version if it changed; True if it switched."""
        try:
            source = self._pick()
        except DBAPIError as exc:  # database restarting or refusing: expected, and it passes
            if not self._registry_down:
                reason = str(exc.orig or exc).strip().splitlines()[0]
                log.warning(
                    "model registry unreachable (%s); keeping %s until it answers",
                    reason,
                    self._current.version,
                )
            self._registry_down = True
            return False
        except Exception:
            log.exception("could not read the model registry; keeping %s", self._current.version)
            return False
        if self._registry_down:
            log.info("model registry reachable again")
            self._registry_down = False
        if source in (self._source, self._failed):
            return False
        with self._lock:
            try:
                classifier = self._load(source)
                classifier.warm_up()
            except Exception as exc:
                self._load_failed(source, f"{type(exc).__name__}: {exc}")
                return False
            old = self._current.version
            self._source, self._current = source, classifier
            _now_serving(source)
        log.info("switched model %s -> %s (%s)", old, classifier.version, classifier.serving)
        return True

    def _load_failed(self, source: ModelSource, error: str) -> None:
        """Say it once, remember it, and record it in the registry when one is wired in."""
        self._failed = source
        log.error(
            "could not load model %s (%s); keeping %s, and not trying %s again until another "
            "version is promoted or the worker restarts",
            source.version, error, self._current.version, source.version,
        )  # fmt: skip
        if self._on_load_error is not None:
            try:
                self._on_load_error(source, error)
            except Exception as exc:  # the registry may be what is failing
                log.warning("could not record the load error of %s: %s", source.version, exc)


def _now_serving(source: ModelSource) -> None:
    if source.cache is not None:
        source.cache.serving(source.sha256)


def load_error_recorder(
    sessions: sessionmaker[Session], worker: str
) -> Callable[[ModelSource, str], None]:
    """ModelHolder's on_load_error: a `load_failed` event and the version's load_error."""

    def record(source: ModelSource, error: str) -> None:
        with sessions() as session, session.begin():
            registry.record_load_error(session, source.version, worker, error)

    return record

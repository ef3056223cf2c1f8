"""The model a re-score is answered by: the served one, the shadow, or one loaded for it.

A re-score message names its version (crackq rescore --model V). The promoted and the
shadow version are already loaded; any other registered version is loaded here, through
the same loader and model cache as a promotion or a shadow, and held until a re-score
names another (one extra model at a time). A version that will not load is remembered
and its messages fail at once (dead letters with the reason), not a load each.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from db import registry
from models.serving import Classifier
from worker.modelstore import ModelSource, source_of

log = logging.getLogger(__name__)


class RescoreModelError(RuntimeError):
    """The version a re-score names could not be loaded on this worker."""


class RescoreModels:
    """Finds or loads the classifier of a re-score's version; thread-safe."""

    def __init__(
        self, load: Callable[[ModelSource], Classifier], sessions: sessionmaker[Session]
    ) -> None:
        self._load = load
        self._sessions = sessions
        self._held: Classifier | None = None
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, version: str, served: Classifier, shadow: Classifier | None) -> Classifier:
        if served.version == version:
            return served
        if shadow is not None and shadow.version == version:
            return shadow
        with self._lock:
            if self._held is not None and self._held.version == version:
                return self._held
            if version in self._failed:
                raise RescoreModelError(f"version {version} does not load: {self._failed[version]}")
            with self._sessions() as session:  # a registry outage propagates: retried later
                source = source_of(registry.get(session, version), self._sessions)
            try:
                classifier = self._load(source)
                classifier.warm_up()
            except Exception as exc:
                self._failed[version] = f"{type(exc).__name__}: {exc}"
                log.error("could not load %s for re-scoring: %s", version, self._failed[version])
                raise RescoreModelError(f"version {version} does not load: {exc}") from exc
            # the one held before is released once no batch still holds it
            self._held = classifier
        log.info("loaded %s for re-scoring (%s)", version, classifier.serving)
        return classifier

    def close(self) -> None:
        """Release the held model (worker shutdown)."""
        with self._lock:
            if self._held is not None:
                self._held.close()
                self._held = None

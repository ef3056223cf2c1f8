"""The shadow version a worker also scores live photos with, picked up like a promotion.

`crackq models shadow V --fraction F` writes one row (db.shadow); every inference worker
polls it on the model poller's thread (worker.processmodels.ModelPoller), loads V beside the
promoted model and from then on scores the photos whose request id samples in
(`sampled`: a hash, so a rerun shadows the same photos). Nothing here may fail or hold up
live rows: a version that will not load is logged, counted and not tried again until
the setting changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from db import registry, shadow
from models.serving import Classifier
from worker import metrics
from worker.modelstore import ModelSource, source_of

log = logging.getLogger(__name__)


def sampled(request_id: str, fraction: float) -> bool:
    """Whether `request_id` falls in a `fraction` sample; the same answer on every worker."""
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0**64


@dataclass(frozen=True)
class ShadowChoice:
    """What the registry says: which weights to shadow, on which share of photos."""

    source: ModelSource
    fraction: float


@dataclass(frozen=True)
class Shadow:
    """A loaded shadow model and its sample; batches take one and keep it throughout."""

    classifier: Classifier
    fraction: float

    @property
    def version(self) -> str:
        return self.classifier.version

    def wants(self, request_id: str) -> bool:
        return sampled(request_id, self.fraction)


def shadow_choice(sessions: sessionmaker[Session]) -> ShadowChoice | None:
    """The shadow setting as weights to load, or None when nothing is shadowed."""
    with sessions() as session:
        setting = shadow.active(session)
        if setting is None:
            return None
        row = registry.get(session, setting.version)
        return ShadowChoice(source_of(row, sessions), setting.fraction)


class ShadowHolder:
    """Holds the shadow model; `check_once` follows the registry's shadow setting."""

    def __init__(
        self,
        load: Callable[[ModelSource], Classifier],
        pick: Callable[[], ShadowChoice | None],
    ) -> None:
        self._load = load
        self._pick = pick
        self._choice: ShadowChoice | None = None
        self._shadow: Shadow | None = None
        self._failed: ModelSource | None = None
        self._unreadable = False  # log a registry outage once

    def current(self) -> Shadow | None:
        return self._shadow

    def check_once(self) -> bool:
        """Follow the setting: load, re-sample or drop the shadow; True if it changed."""
        try:
            choice = self._pick()
        except Exception as exc:
            if not self._unreadable:
                log.warning("could not read the shadow setting (%s); keeping it as it was", exc)
            self._unreadable = True
            return False
        self._unreadable = False
        if choice is None:
            self._failed = None  # shadowed again later, a version that failed is tried again
        if choice == self._choice:
            return False
        if choice is None:
            log.info("shadow %s stopped", self._shadow.version if self._shadow else "-")
            self._choice = self._shadow = None
            return True
        if self._shadow is not None and self._choice and choice.source == self._choice.source:
            self._shadow = Shadow(self._shadow.classifier, choice.fraction)
        elif choice.source == self._failed:
            return False
        else:
            try:
                classifier = self._load(choice.source)
                classifier.warm_up()
            except Exception as exc:
                metrics.SHADOW_FAILURES.labels("load").inc()
                log.error(
                    "could not load shadow version %s (%s: %s); live photos are not shadowed "
                    "until another version is shadowed or the worker restarts",
                    choice.source.version, type(exc).__name__, exc,
                )  # fmt: skip
                self._failed, self._shadow, self._choice = choice.source, None, None
                return False
            self._shadow = Shadow(classifier, choice.fraction)
        self._choice = choice
        log.info(
            "shadowing %s on %g of live photos (%s)",
            self._shadow.version, choice.fraction, self._shadow.classifier.serving,
        )  # fmt: skip
        return True

    def close(self) -> None:
        """Release the shadow model (worker shutdown)."""
        if self._shadow is not None:
            self._shadow.classifier.close()
            self._shadow = None

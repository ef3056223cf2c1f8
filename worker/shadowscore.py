"""Shadow scoring of live photos, after their rows are stored: never raises, never blocks a row.

A batch's live rows are committed first; then the sampled photos' pixels, decoded once for
the promoted model, go through the shadow model (the same forward thread, one more pass)
and its answers become `shadow_scores` rows. A mapped photo is mapped again, tile by tile,
by the shadow model from the same decoded image: its photo probability and crack tiles
are kept, not its tile map. Any failure is logged and counted (crackq_shadow_failures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import shadow as shadow_db
from models.serving import Classifier
from models.tiles import CrackMap
from worker import metrics
from worker.forward import PATCH, Forward, ForwardClosed, run
from worker.jobs import Loaded
from worker.rows import verdict
from worker.shadow import Shadow

log = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()


def score_patches(
    shadow: Shadow | None,
    loaded: Sequence[Loaded],
    live: Classifier,
    sessions: sessionmaker[Session],
    forward: Forward | None,
) -> int:
    """Score the sampled photos of a batch classified whole; how many were stored."""
    if shadow is None:
        return 0
    picked = [x for x in loaded if x.pixels is not None and shadow.wants(x.item.request_id)]
    if not picked:
        return 0
    if shadow.classifier.input_size != live.input_size:
        _skip(shadow, live, "input_size")
        return 0
    try:
        pixels = np.stack([x.pixels for x in picked])  # type: ignore[misc]
        p_crack = run(forward, shadow.classifier, pixels, PATCH).tolist()
    except ForwardClosed:
        return 0  # the worker is stopping; the live rows are stored
    except Exception as exc:
        return _failed(shadow, "forward", exc)
    scores = [
        _score(x.item.request_id, shadow, verdict(p, shadow.classifier.threshold), "patch")
        for x, p in zip(picked, p_crack, strict=True)
    ]
    return _store(shadow, scores, sessions)


def score_map(
    shadow: Shadow | None,
    request_id: str,
    mapper: Callable[[Classifier], CrackMap],
    min_region_tiles: int,
    sessions: sessionmaker[Session],
) -> int:
    """Map one live photo again with the shadow model (`mapper` holds the decoded image)."""
    if shadow is None or not shadow.wants(request_id):
        return 0
    try:
        cmap = mapper(shadow.classifier)
    except ForwardClosed:
        return 0
    except Exception as exc:  # map_timeout included: the shadow gets the same budget
        return _failed(shadow, "forward", exc)
    answer = verdict(cmap.crack_probability(min_region_tiles), 0.5)
    score = _score(request_id, shadow, answer, "map")
    score.update(tiles=len(cmap.grid), crack_tiles=cmap.crack_tiles)
    return _store(shadow, [score], sessions)


def _score(request_id: str, shadow: Shadow, answer: dict[str, Any], mode: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "version": shadow.version,
        "label": answer["label"],
        "crack_probability": answer["crack_probability"],
        "mode": mode,
    }


def _store(shadow: Shadow, scores: list[dict[str, Any]], sessions: sessionmaker[Session]) -> int:
    try:
        with sessions() as session, session.begin():
            shadow_db.write_scores(session, scores)
    except Exception as exc:
        return _failed(shadow, "write", exc)
    metrics.SHADOW_SCORED.labels(shadow.version).inc(len(scores))
    return len(scores)


def _failed(shadow: Shadow, stage: str, exc: Exception) -> int:
    metrics.SHADOW_FAILURES.labels(stage).inc()
    log.warning("shadow %s: %s failed (%s: %s)", shadow.version, stage, type(exc).__name__, exc)
    return 0


def _skip(shadow: Shadow, live: Classifier, why: str) -> None:
    metrics.SHADOW_FAILURES.labels(why).inc()
    if (shadow.version, why) not in _warned:
        _warned.add((shadow.version, why))
        log.warning(
            "shadow %s takes %d px photos, the promoted %s %d px: photos classified whole "
            "are not shadowed (crack maps are)",
            shadow.version, shadow.classifier.input_size, live.version, live.input_size,
        )  # fmt: skip

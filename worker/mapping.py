"""Crack maps, top-down: a big photo's bytes -> full decode -> tiles -> forward -> map + row.

`pipeline.classify` hands over photos much larger than the model's patch; each is decoded
once at full size, cut into tiles of the training patch size (models.tiles), and its tiles
go through the process's forward thread in the gaps between whole photos (worker.forward).
The row keeps its meaning (label, confidence, crack_probability from the strongest region)
and the map and its regions are written with it, in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import maps, results, scores
from models.dense import block_tiles, dense_grid, dense_map_image
from models.serving import Classifier
from models.tiles import CrackMap, map_image, tile_grid
from worker import metrics
from worker.decode import decode_image
from worker.errors import ErrorCode, ImageError
from worker.forward import TILES, Forward, ForwardClosed, run, run_block
from worker.jobs import Loaded, MapPolicy, PipelineConfig
from worker.review import enter_review
from worker.rows import base_row, failed_row, ms_since, now, verdict
from worker.shadow import Shadow
from worker.shadowscore import score_map

log = logging.getLogger(__name__)


def map_photo(
    loaded: Loaded,
    classifier: Classifier,
    sessions: sessionmaker[Session],
    config: PipelineConfig,
    forward: Forward | None = None,
    shadow: Shadow | None = None,
) -> dict[str, Any]:
    """Map one photo `pipeline.classify` left to map, store its row and map; returns the row.

    Bad input and a photo over its time budget become a failed row with a code; database
    errors propagate, as in `pipeline.classify`. Once stored, `shadow` maps a sampled
    photo again from the same decoded image (worker.shadowscore, which never raises).
    """
    assert loaded.data is not None
    started, t0 = now(), time.perf_counter()
    stored: dict[str, Any] | None = None
    image: Any = None
    minimum = config.maps.min_region_tiles
    try:
        image = decode_image(loaded.data, config.max_pixels, target=None, formats=config.formats)
        decode_ms = loaded.decode_ms + ms_since(t0)
        cmap, inference_ms = _map(image, classifier, config.maps, forward, t0)
        row = {
            **base_row(loaded.item),
            **verdict(cmap.crack_probability(minimum), 0.5),
            **summary(cmap, minimum),
            "model_version": classifier.version,
            "inference_ms": inference_ms,
            "decode_ms": decode_ms,
        }
        stored = stored_map(loaded.item.request_id, classifier.version, cmap, minimum)
    except ImageError as exc:
        row = failed_row(loaded.item, exc, loaded.decode_ms + ms_since(t0))
    except ForwardClosed:
        raise  # the worker is stopping: the message stays unacked and comes back
    except Exception as exc:  # a bug must cost one row, not the worker
        log.exception("unexpected error mapping %s", loaded.item.image_ref)
        error = ImageError(ErrorCode.INTERNAL_ERROR, repr(exc))
        row = failed_row(loaded.item, error, loaded.decode_ms + ms_since(t0))
    row.update(started_at=started, finished_at=now(), worker_host=config.hostname)
    with sessions() as session, session.begin():
        if loaded.item.rescore_version is None:
            written = results.upsert_outcomes(session, [row])
        else:  # a re-score overwrites the stored score, and its map (crackq rescore)
            written = scores.rescore_outcomes(session, [row])
        maps.write_maps(session, [stored] if stored else [], written)
        enter_review(session, written, config.review)
    metrics.observe_map(row, ms_since(t0) / 1000.0)
    log.info(
        "mapped %s with %s: %s tiles, %s crack, %s in %.0f ms",
        loaded.item.request_id,
        classifier.version,
        row.get("tiles"),
        row.get("crack_tiles"),
        row.get("label") or row.get("error_code"),
        ms_since(t0),
    )
    if stored is not None and shadow is not None:

        def again(c: Classifier) -> CrackMap:
            return _map(image, c, config.maps, forward, time.perf_counter())[0]

        score_map(shadow, loaded.item.request_id, again, minimum, sessions)
    return row


def _map(
    image: Any,
    classifier: Classifier,
    policy: MapPolicy,
    forward: Forward | None,
    t0: float,
) -> tuple[CrackMap, float]:
    """The map of `image`, and the milliseconds its tiles spent waiting for and in the model.

    Tile by tile (models.tiles), or with CRACKQ_MAP_ENGINE=dense block by block through
    the network run fully convolutionally (models.dense); both through the forward thread.
    """
    spent = 0.0
    tile, (width, height) = policy.tile_for(classifier), image.size

    def timed(step: Callable[[np.ndarray], np.ndarray], tiles: int) -> Callable[..., np.ndarray]:
        def predict(pixels: np.ndarray) -> np.ndarray:
            nonlocal spent
            if time.perf_counter() - t0 > policy.time_budget_s:
                raise ImageError(
                    ErrorCode.MAP_TIMEOUT,
                    f"mapping {tiles} tiles took over {policy.time_budget_s:.0f} s "
                    "(CRACKQ_MAP_TIME_BUDGET_S)",
                )
            t = time.perf_counter()
            out = step(pixels)
            spent += ms_since(t)
            return out

        return predict

    if policy.engine == "dense" and classifier.dense is not None:
        dense = dense_grid(width, height, tile, classifier.input_size, policy.overlap)
        step = partial(run_block, forward, classifier)
        cmap = dense_map_image(
            image,
            dense,
            timed(step, len(dense.grid)),
            block=block_tiles(dense, policy.dense_block),
            threshold=classifier.threshold,
        )
        return cmap, spent
    grid = tile_grid(width, height, tile, policy.overlap)
    cmap = map_image(
        image,
        grid,
        timed(lambda tiles: run(forward, classifier, tiles, TILES), len(grid)),
        size=classifier.input_size,
        batch=policy.batch,
        threshold=classifier.threshold,
    )
    return cmap, spent


def summary(cmap: CrackMap, min_region_tiles: int) -> dict[str, Any]:
    """The map's columns on the photo's row (results: mode, tiles, crack_tiles, ...).

    Regions are those of at least `min_region_tiles` tiles, the ones that make a photo a
    crack: a row has crack regions exactly when its label is crack.
    """
    return {
        "mode": "map",
        "tiles": len(cmap.grid),
        "crack_tiles": cmap.crack_tiles,
        "crack_area_fraction": cmap.crack_area_fraction,
        "crack_regions": len(cmap.counted(min_region_tiles)),
    }


def stored_map(
    request_id: str, version: str, cmap: CrackMap, min_region_tiles: int
) -> dict[str, Any]:
    """The map as db.maps.write_maps stores it (every tile; the regions that count)."""
    g = cmap.grid
    return {
        "request_id": request_id,
        "model_version": version,
        "width": g.width,
        "height": g.height,
        "tile": g.tile,
        "stride": g.stride,
        "rows": g.rows,
        "cols": g.cols,
        "probabilities": [round(float(p), 6) for p in cmap.probabilities.ravel()],
        "regions": [
            {
                "x0": r.box[0],
                "y0": r.box[1],
                "x1": r.box[2],
                "y1": r.box[3],
                "tiles": r.tiles,
                "max_probability": r.max_probability,
            }
            for r in cmap.counted(min_region_tiles)
        ],
    }

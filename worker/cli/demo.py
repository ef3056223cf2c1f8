"""`crackq demo`: the whole loop on one machine — train, promote, classify through the queue."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from db import assets as assets_db
from db import results as results_db
from db.tables import Result
from models.recipe import Recipe
from worker.enqueue import submit
from worker.localstack import LocalWorkers, local_services, local_workers, wait_serving
from worker.messages import AssetFields
from worker.settings import get_settings
from worker.waiting import wait_rows, wait_run

if TYPE_CHECKING:
    from worker.demodata import Confusion, DemoPhotos


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    # Imported here and below, not at the top: they load torch, which `crackq --help` skips.
    from worker.demodata import demo_photos

    settings = get_settings()
    work = (settings.data_dir / "demo").resolve()
    work.mkdir(parents=True, exist_ok=True)
    with local_services(settings, say) as services:
        photos = demo_photos(
            args.data, args.train_images, args.classify, settings.data_dir.resolve(), work, say
        )
        allowed_root = Path(photos.held_out[0][0]).parent.parent
        with local_workers(services, [allowed_root, work], work, say) as stack:
            return _train_then_classify(stack, photos, args.epochs, work)


def _train_then_classify(stack: LocalWorkers, photos: DemoPhotos, epochs: int, work: Path) -> int:
    from worker.demodata import confusion
    from worker.runsubmit import start_run
    from worker.trainingdata import DataSpec

    app, sessions = stack
    # CPU-sized: 112 px trains ~4x faster than 224; the checkpoint records its input size,
    # so the inference worker preprocesses to match.
    recipe = Recipe(epochs=epochs, batch_size=32, num_workers=1, val_fraction=0.2, image_size=112)
    say(f"training on {photos.manifest} ({epochs} epoch(s), CPU-sized recipe)")
    spec = DataSpec(manifests=[str(photos.manifest)])
    run_id = start_run(app, sessions, spec, recipe, auto_promote=True)
    run = wait_run(sessions, run_id)
    if run.status != "succeeded":
        say(f"training run {run_id} {run.status}: {run.message}")
        return 1
    m = run.metrics
    say(
        f"run {run_id} -> model {run.model_version}: val AUC {m['auc']:.4f}, accuracy "
        f"{m['at_chosen']['accuracy']:.4f} at the chosen threshold {m['chosen_threshold']:.3g}; "
        f"{run.message}"
    )
    wait_serving(app, run.model_version, say)
    say(f"sending {len(photos.held_out)} held-out photos through the queue")
    sub = submit(app, sessions, [p for p, _ in photos.held_out], batch_id=f"demo-{run_id}")
    t0 = time.perf_counter()
    wait_rows(sessions, sub.request_ids, timeout=1800)
    elapsed = time.perf_counter() - t0
    with sessions() as session:
        found = results_db.query_results(session, request_ids=sub.request_ids, limit=None)
    by_id = {r.request_id: r for r in found}
    counts = confusion(photos.held_out, [by_id.get(i) for i in sub.request_ids])
    report(counts, elapsed, sub.batch_id, run.artifacts_dir)
    _inspect_an_asset(stack, photos, found)
    _map_a_mosaic(stack, photos, work)
    _review_queue(stack)
    _console_hint(photos, work)
    return 0


def _inspect_an_asset(stack: LocalWorkers, photos: DemoPhotos, found: Sequence[Result]) -> None:
    """One asset inspected twice, a month apart: clean photos, then one with a crack.

    Photos the model got right are preferred, so the asset view has a new crack to show.
    """
    app, sessions = stack
    said = {r.image_ref: r.label for r in found if r.status == "succeeded"}

    def pick(truth: int, label: str, n: int) -> list[str]:
        ranked = sorted((said.get(p) != label, p) for p, y in photos.held_out if y == truth)
        return [p for _, p in ranked[:n]]

    clean, crack = pick(0, "no_crack", 2), pick(1, "crack", 1)
    if len(clean) < 2 or not crack:
        return
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    visits = [(1, now - dt.timedelta(days=30), clean), (2, now, [clean[1], *crack])]
    say("inspecting asset demo-wall twice: 2 clean photos, a month later one with a crack")
    ids = []
    for n, when, refs in visits:
        asset = AssetFields(
            asset_id="demo-wall",
            inspection_id=f"demo-wall-{n}",
            captured_at=when,
            metadata={"source": "crackq demo", "visit": n},
        )
        ids += submit(app, sessions, refs, batch_id="demo-assets", asset=asset).request_ids
    wait_rows(sessions, ids, timeout=600)
    with sessions() as session:
        row = assets_db.get_asset(session, "demo-wall")
    if row is None:
        return
    print(
        f"\nasset demo-wall: {row['inspections']} inspections, latest {row['latest_label']} "
        f"after {row['previous_label']}, trend {row['trend']}"
    )
    print("  crackq assets show demo-wall     (or SELECT * FROM crackq_assets_v1)")


def _map_a_mosaic(stack: LocalWorkers, photos: DemoPhotos, work: Path) -> None:
    """A big photo made of held-out patches, mapped tile by tile through the queue: a
    full-size photo of demo-wall at its second inspection (its crack area on the asset page)."""
    import random

    from models.mosaics import build_mosaic, save_mosaic

    app, sessions = stack
    crack = [Path(p) for p, y in photos.held_out if y == 1]
    clean = [Path(p) for p, y in photos.held_out if y == 0]
    if not crack or not clean:
        return
    from PIL import Image

    with Image.open(crack[0]) as first:
        side = min(first.size)  # the patches' own size: the model learned at that scale
    mosaic = build_mosaic(crack, clean, 4, 6, random.Random(0), crack_cells=5, patch=side)
    path = save_mosaic(mosaic, work / "mosaic.jpg")
    w, h = mosaic.image.size
    say(
        f"mapping a {w}x{h} photo of 24 held-out patches, 5 of them cracked ({path}), "
        "taken at demo-wall's second inspection"
    )
    asset = AssetFields(
        asset_id="demo-wall",
        inspection_id="demo-wall-2",
        captured_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        metadata={"source": "crackq demo", "visit": 2, "camera": "full-size"},
    )
    sub = submit(app, sessions, [str(path)], batch_id="demo-map", mode="map", asset=asset)
    wait_rows(sessions, sub.request_ids, timeout=600)
    with sessions() as session:
        [row] = results_db.query_results(session, request_ids=sub.request_ids, limit=None)
    print(
        f"\ncrack map of {path.name}: {row.status} {row.label or row.error_code}, "
        f"{row.crack_tiles}/{row.tiles} crack tiles, {row.crack_regions} region(s)"
    )
    print(f"  crackq map {row.request_id}               (tiles, regions)")
    print(f"  crackq map {row.request_id} -o overlay.png (the photo with its heat map)")


def _review_queue(stack: LocalWorkers) -> None:
    """What the workers put in the review queue while the demo ran, by rule."""
    from db import review

    with stack.sessions() as session:
        counts = review.queue_counts(session).get("open", {})
        first = review.open_entries(session, limit=1)
    by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    print(
        f"\nreview queue: {sum(counts.values())} photos open"
        + (f" ({by_reason})" if by_reason else "")
    )
    print("  crackq review                    (the open photos, oldest first)")
    if first:
        rid = first[0]["request_id"]
        print(f"  crackq review answer {rid} crack|no_crack|skip --by NAME")
    print("  crackq finetune --data DIR --labels   (trains on the answers)")


def _console_hint(photos: DemoPhotos, work: Path) -> None:
    """How to look at what the demo left: the console, reading the demo's photos."""
    roots = f"{Path(photos.held_out[0][0]).parent.parent},{work}"
    print("\nsee it in a browser (review queue, the demo-wall asset, the model and its charts):")
    print(f"  CRACKQ_ALLOWED_ROOTS={roots} crackq ui    # then open http://127.0.0.1:8600/")


def report(c: Confusion, elapsed: float, batch_id: str, artifacts: str | None) -> None:
    n = c.tp + c.tn + c.fp + c.fn
    print(
        f"\nclassified {n} held-out photos through Redis -> Celery -> PostgreSQL in {elapsed:.1f} s "
        f"({n / max(elapsed, 1e-9):.1f} img/s); failed: {c.failed}"
    )
    print(f"accuracy {(c.tp + c.tn) / max(n, 1):.4f}")
    print("confusion matrix (rows = truth, columns = prediction):")
    print(
        f"               no_crack  crack\n  no_crack   {c.tn:>9}  {c.fp:>5}\n"
        f"  crack      {c.fn:>9}  {c.tp:>5}"
    )
    print("\nwhere to look:")
    print(f"  crackq results --batch-id {batch_id}      (or SELECT * FROM crackq_results_v1)")
    print(f"  training artifacts: {artifacts} (training.png, predictions.png, metrics.json)")
    print("  crackq models list; crackq flower  (Flower dashboard, while workers run)")

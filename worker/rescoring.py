"""A re-score batch, top-down: stored refs -> read/decode -> predict after live -> overwrite.

`crackq rescore` (worker.rescore) sends stored succeeded rows back through the queue, each
message naming the version to answer with. Workers run them as live photos are run
(worker.pipeline: the same reading limits, decoding and threshold), on the worker's
re-score lane (worker.rescorelane: one thread, never a batch slot), with three
differences that keep live traffic first: the photos are decoded on that thread (the
decode pool stays free for live photos), their forward passes go in the
forward thread's last lane (worker.forward: small passes, and at most
CRACKQ_RESCORE_BUSY_SHARE of its time, while live photos arrive),
and the write overwrites the stored score (db.scores.rescore_outcomes) with its history
row, instead of the live upsert. Big photos come back in `to_map`, mapped as live ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from db import scores
from models.serving import Classifier
from worker.forward import RESCORE, Forward
from worker.jobs import Classified, Item, PipelineConfig
from worker.pipeline import Timings, load_all, predict_rows
from worker.review import enter_review
from worker.rows import now

log = logging.getLogger(__name__)


def rescore(
    items: Sequence[Item],
    classifier: Classifier,
    sessions: sessionmaker[Session],
    config: PipelineConfig,
    forward: Forward | None = None,
) -> Classified:
    """Answer `items` (re-scores naming `classifier`'s version) and overwrite their scores.

    Rows not `succeeded`, or already answered by the version, are skipped (a redelivered
    message changes nothing). A photo that cannot be read now keeps its stored score.
    """
    started, timings = now(), Timings()
    with timings.phase("lookup"):
        todo = still_to_rescore(items, sessions)
    if not todo:
        return Classified([], [], classifier)
    with timings.phase("decode"):
        loaded = load_all(todo, classifier, config, None)
    to_map = [x for x in loaded if x.data is not None]
    whole = [x for x in loaded if x.data is None]
    rows = predict_rows(whole, classifier, config.hostname, started, forward, timings, RESCORE)
    with timings.phase("write"), sessions() as session, session.begin():
        changed = scores.rescore_outcomes(session, rows)
        enter_review(session, changed, config.review)
    phases = ", ".join(f"{name} {ms:.0f} ms" for name, ms in timings.ms.items())
    failed = sum(r["status"] == "failed" for r in rows)
    log.info(
        "re-scored %d with %s (%d unreadable, kept as they were), %d photos to map; %s",
        len(changed), classifier.version, failed, len(to_map), phases,
    )  # fmt: skip
    return Classified(rows, to_map, classifier)


def still_to_rescore(items: Sequence[Item], sessions: sessionmaker[Session]) -> list[Item]:
    """Items whose row is succeeded and not answered by their version, each id once."""
    version = items[0].rescore_version
    assert version is not None
    with sessions() as session:
        skip = scores.rescored_ids(session, {i.request_id for i in items}, version)
    seen: set[str] = set()
    todo = []
    for item in items:
        if item.request_id not in skip and item.request_id not in seen:
            seen.add(item.request_id)
            todo.append(item)
    return todo

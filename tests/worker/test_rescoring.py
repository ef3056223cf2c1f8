"""Re-score messages: the field they carry, and live photos first in a mixed batch."""

from __future__ import annotations

import pytest

from worker.classify_task import by_version, to_item
from worker.jobs import Item
from worker.messages import ClassifyArgs, InvalidMessage, parse


def test_a_rescore_message_names_a_version_that_reaches_the_item() -> None:
    args = parse(ClassifyArgs, (), {"image_ref": "/p/a.jpg", "rescore_version": "v7"})
    assert to_item(args, "a").rescore_version == "v7"
    assert to_item(parse(ClassifyArgs, (), {"image_ref": "/p/a.jpg"}), "a").rescore_version is None
    for bad in ("", "v" * 101, "a\x00b", 7):
        with pytest.raises(InvalidMessage):
            parse(ClassifyArgs, (), {"image_ref": "/p/a.jpg", "rescore_version": bad})


def test_a_mixed_batch_runs_its_live_photos_first_then_each_version() -> None:
    items = [
        Item("r1", "/p/1", rescore_version="v2"),
        Item("l1", "/p/2"),
        Item("r2", "/p/3", rescore_version="v3"),
        Item("r3", "/p/4", rescore_version="v2"),
        Item("l2", "/p/5"),
    ]
    groups = by_version([(None, item) for item in items])
    assert [[item.request_id for _, item in g] for g in groups] == [
        ["l1", "l2"],
        ["r1", "r3"],
        ["r2"],
    ]
    only_rescores = by_version([(None, items[0])])
    assert [[i.request_id for _, i in g] for g in only_rescores] == [["r1"]]

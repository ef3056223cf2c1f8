"""Task argument schemas: what producers in any language may send."""

from __future__ import annotations

import pytest

from worker.messages import ClassifyArgs, ClassifyManyArgs, InvalidMessage, json_schema, parse


def test_valid_classify_kwargs() -> None:
    args = parse(
        ClassifyArgs,
        (),
        {
            "image_ref": "s3://b/k.jpg",
            "request_id": "r1",
            "submitted_at": "2026-11-25T10:00:00+00:00",
        },
    )
    assert args.request_id == "r1" and args.submitted_at.year == 2026


@pytest.mark.parametrize(
    "args, kwargs, needle",
    [
        ((), {}, "image_ref"),
        (("x",), {}, "positional"),
        ((), {"image_ref": 5}, "image_ref"),
        ((), {"image_ref": "a", "colour": "red"}, "colour"),
        ((), {"image_ref": "a", "request_id": 7}, "request_id"),
        ((), {"image_ref": ""}, "image_ref"),
        ((), ["image_ref"], "object"),
        # hostile bodies: shapes and values PostgreSQL cannot hold
        (5, {"image_ref": "a"}, "args must be a list"),
        (True, {"image_ref": "a"}, "args must be a list"),
        ("ab", {"image_ref": "a"}, "args must be a list"),
        ((), {"image_ref": "a", "request_id": "r\x00"}, "NUL"),
        ((), {"image_ref": "a\x00b"}, "NUL"),
        ((), {"image_ref": "a", "batch_id": "b\x00"}, "NUL"),
        ((), {"image_ref": "a", "submitted_at": "0001-01-01T00:00:00+00:00"}, "between"),
        ((), {"image_ref": "a", "submitted_at": "9999-12-31T23:59:59"}, "between"),
    ],
)
def test_invalid_classify_kwargs_are_refused_with_reason(args, kwargs, needle) -> None:
    with pytest.raises(InvalidMessage, match=needle):
        parse(ClassifyArgs, args, kwargs)


def test_bulk_message() -> None:
    many = parse(
        ClassifyManyArgs, (), {"items": [{"image_ref": "a"}, {"image_ref": "b"}], "batch_id": "x"}
    )
    assert [i.image_ref for i in many.items] == ["a", "b"]
    with pytest.raises(InvalidMessage):
        parse(ClassifyManyArgs, (), {"items": []})


def test_schema_is_documentable() -> None:
    schema = json_schema()
    assert schema["crackq.classify"]["required"] == ["image_ref"]
    assert schema["crackq.classify"]["additionalProperties"] is False


def test_asset_fields_are_optional_and_kept() -> None:
    meta = {"camera": {"model": "X1", "lens": [24, 70]}, "gps": [47.37, 8.54], "ok": True}
    args = parse(
        ClassifyArgs,
        (),
        {
            "image_ref": "a",
            "asset_id": "pier-7",
            "inspection_id": "2026-spring",
            "captured_at": "2026-03-01T08:30:00+01:00",
            "metadata": meta,
        },
    )
    assert (args.asset_id, args.inspection_id, args.metadata) == ("pier-7", "2026-spring", meta)
    assert args.captured_at.utcoffset().total_seconds() == 3600
    bare = parse(ClassifyArgs, (), {"image_ref": "a"})
    assert (bare.asset_id, bare.inspection_id, bare.captured_at, bare.metadata) == (None,) * 4
    # a bulk message's items carry them too
    many = parse(
        ClassifyManyArgs, (), {"items": [{"image_ref": "a", "asset_id": "p", "metadata": {}}]}
    )
    assert many.items[0].asset_id == "p" and many.items[0].metadata == {}


def _nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"asset_id": ""}, "asset_id"),
        ({"asset_id": "a" * 201}, "asset_id"),
        ({"asset_id": 7}, "asset_id"),
        ({"asset_id": "a\x00"}, "NUL"),
        ({"inspection_id": "i" * 201}, "inspection_id"),
        ({"inspection_id": ["i"]}, "inspection_id"),
        ({"captured_at": "0001-01-01T00:00:00+00:00"}, "captured_at: .*between"),
        ({"captured_at": "yesterday"}, "captured_at"),
        ({"metadata": [1, 2]}, "metadata: .*JSON object, got array"),
        ({"metadata": "x"}, "metadata: .*JSON object, got string"),
        ({"metadata": 5}, "metadata: .*JSON object, got number"),
        ({"metadata": {"note": "x" * 5000}}, "metadata: .*over the limit of 4096"),
        ({"metadata": {f"k{i}": i for i in range(600)}}, "over the limit"),
        ({"metadata": _nested(5)}, "metadata: .*deeper than 4"),
        ({"metadata": {"a": [[[[1]]]]}}, "deeper than 4"),
        ({"metadata": {"a": float("nan")}}, "NaN or infinity"),
        ({"metadata": {"a": float("inf")}}, "NaN or infinity"),
        ({"metadata": {"a": "b\x00"}}, "NUL"),
        ({"metadata": {"a\x00": 1}}, "NUL"),
        ({"metadata": _nested(100_000)}, "."),  # refused, whatever the parser says first
    ],
)
def test_hostile_asset_fields_are_refused_with_reason(kwargs, needle) -> None:
    with pytest.raises(InvalidMessage, match=needle):
        parse(ClassifyArgs, (), {"image_ref": "a", **kwargs})


def test_metadata_at_its_limits_is_accepted() -> None:
    assert parse(ClassifyArgs, (), {"image_ref": "a", "metadata": _nested(4)}).metadata
    big = {"note": "x" * (4096 - len('{"note":""}'))}
    assert parse(ClassifyArgs, (), {"image_ref": "a", "metadata": big}).metadata == big


def test_schema_documents_the_asset_fields() -> None:
    for schema in (json_schema()["crackq.classify"], json_schema()["crackq.classify_many"]):
        text = str(schema)
        for name in ("asset_id", "inspection_id", "captured_at", "metadata"):
            assert name in text

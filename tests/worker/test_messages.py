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

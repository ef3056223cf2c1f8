"""Hostile message bodies: parsing refuses with InvalidMessage only; any dead letter can be stored."""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.tables import DeadLetter
from worker import deadletter
from worker.messages import (
    ClassifyArgs,
    ClassifyManyArgs,
    InvalidMessage,
    check_id,
    parse,
)

BOUNDED = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# text as a JSON decoder may hand it over: NUL, lone surrogates and all
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "é", "/", ":"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=20,
)
KWARGS = st.dictionaries(
    st.sampled_from(["image_ref", "request_id", "batch_id", "submitted_at", "items"])
    | HOSTILE_TEXT,
    JSON_VALUES,
    max_size=5,
)


@BOUNDED
@given(args=JSON_VALUES, kwargs=KWARGS | JSON_VALUES)
def test_any_decoded_body_parses_or_is_refused_with_a_reason(args: Any, kwargs: Any) -> None:
    for model in (ClassifyArgs, ClassifyManyArgs):
        try:
            parsed = parse(model, args, kwargs)
        except InvalidMessage as exc:
            assert str(exc)
            continue
        # whatever passed can be stored: no NUL, valid UTF-8
        text = parsed.model_dump_json()
        assert "\\u0000" not in text
        text.encode("utf-8")


def test_fallback_ids_are_checked_like_request_ids() -> None:
    assert check_id("x" * 200) == "x" * 200
    for bad in ("", "x" * 201, "a\x00b", "\ud800"):
        with pytest.raises(InvalidMessage):
            check_id(bad)


def test_clean_makes_any_value_jsonb_safe() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    cleaned = deadletter.clean_payload(
        {"a\x00": "b\x00\ud800", "n": math.nan, "i": -math.inf, "deep": deep, "t": (1, b"x")}
    )
    text = json.dumps(cleaned, allow_nan=False)  # raises on NaN/Infinity
    assert "\\u0000" not in text.replace("\\\\u0000", "")
    assert cleaned["n"] == "nan" and cleaned["i"] == "-inf"
    assert "nested deeper" in text
    big = deadletter.clean_payload({"x": "y" * (deadletter.MAX_PAYLOAD_JSON + 1)})
    assert big["truncated"] is True and len(big["json_prefix"]) == deadletter.MAX_RAW


@settings(BOUNDED, max_examples=60)
@given(task_id=HOSTILE_TEXT, payload=JSON_VALUES)
def test_any_dead_letter_is_stored(sessions, task_id: str, payload: Any) -> None:
    """The old code re-queued forever what JSONB could not hold (NUL, NaN, over-long ids)."""
    marker = uuid.uuid4().hex
    long_id = f"{marker}-{task_id}" + "x" * 300
    assert deadletter.record(long_id, "crackq.classify\x00", f"reason\x00{marker}", payload)
    with sessions() as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.task_id.startswith(marker))).one()
    assert len(letter.task_id) == deadletter.MAX_ID
    assert letter.task_name == "crackq.classify\\u0000"
    assert marker in letter.reason


def test_an_unreachable_database_keeps_the_message(monkeypatch) -> None:
    from sqlalchemy.orm import sessionmaker

    from db.session import make_engine

    dead = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    monkeypatch.setattr(deadletter, "get_sessions", lambda: sessionmaker(dead))
    assert deadletter.record("id", "task", "reason", {}) is False
    dead.dispose()

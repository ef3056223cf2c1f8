"""The JSON argument schemas of crackq's tasks: what any Celery-protocol producer sends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

MAX_REF_CHARS = 4096
MAX_ID_CHARS = 200  # results.request_id / batch_id columns
# Timestamps outside these years are refused: PostgreSQL stores year 1 or 9999, but every
# later read that shifts it by a time zone overflows Python's datetime.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)


class InvalidMessage(ValueError):
    """Task arguments that do not match the schema."""


def storable_text(value: str) -> str:
    """Refuse what a PostgreSQL text column cannot hold (NUL) or UTF-8 cannot encode."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from a JSON "\ud800"
        raise ValueError(f"is not valid UTF-8 text ({exc.reason})") from None
    return value


def check_id(value: str, what: str = "request id") -> str:
    """An id as stored in results: 1..200 storable characters; InvalidMessage otherwise."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise InvalidMessage(f"{what} must be 1 to {MAX_ID_CHARS} characters")
    try:
        return storable_text(value)
    except ValueError as exc:
        raise InvalidMessage(f"{what} {exc}") from None


def _in_range(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


Text = Annotated[str, AfterValidator(storable_text)]
Timestamp = Annotated[dt.datetime | None, AfterValidator(_in_range)]


class ClassifyArgs(BaseModel):
    """kwargs of `crackq.classify`: one image reference per message."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_ref: Text = Field(min_length=1, max_length=MAX_REF_CHARS)
    request_id: Text | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    batch_id: Text | None = Field(None, max_length=MAX_ID_CHARS)
    submitted_at: Timestamp = None
    mode: Literal["auto", "patch", "map"] = Field(
        "auto",
        description="patch: classify the photo whole; map: map it tile by tile; auto: map "
        "it when a side is far larger than the model's training patch.",
    )


class ClassifyManyArgs(BaseModel):
    """kwargs of `crackq.classify_many`: many references in one message (bulk producers)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[ClassifyArgs] = Field(min_length=1, max_length=10_000)
    batch_id: Text | None = Field(None, max_length=MAX_ID_CHARS)


def parse(model: type[BaseModel], args: Any, kwargs: Any) -> Any:
    """Validate a message's args/kwargs against `model`; InvalidMessage says what is wrong."""
    if args is not None and not isinstance(args, list | tuple):
        raise InvalidMessage(f"args must be a list, got {type(args).__name__}")
    if args:
        raise InvalidMessage(f"positional arguments are not accepted (got {len(args)}); use kwargs")
    if not isinstance(kwargs, dict):
        raise InvalidMessage(f"kwargs must be an object, got {type(kwargs).__name__}")
    try:
        # JSON carries datetimes as ISO-8601 strings: allow that one coercion.
        return model.model_validate_json(_to_json(kwargs))
    except (ValidationError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessage(_summary(exc)) from exc


def _to_json(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, default=str)


def _summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'kwargs'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc) or type(exc).__name__


def json_schema() -> dict[str, Any]:
    """The JSON Schemas documented in the README for producers in other languages."""
    return {
        "crackq.classify": ClassifyArgs.model_json_schema(),
        "crackq.classify_many": ClassifyManyArgs.model_json_schema(),
    }

"""The JSON argument schemas of crackq's tasks: what any Celery-protocol producer sends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_REF_CHARS = 4096


class InvalidMessage(ValueError):
    """Task arguments that do not match the schema."""


class ClassifyArgs(BaseModel):
    """kwargs of `crackq.classify`: one image reference per message."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_ref: str = Field(min_length=1, max_length=MAX_REF_CHARS)
    request_id: str | None = Field(None, min_length=1, max_length=200)
    batch_id: str | None = Field(None, max_length=200)
    submitted_at: dt.datetime | None = None


class ClassifyManyArgs(BaseModel):
    """kwargs of `crackq.classify_many`: many references in one message (bulk producers)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[ClassifyArgs] = Field(min_length=1, max_length=10_000)
    batch_id: str | None = Field(None, max_length=200)


def parse(model: type[BaseModel], args: Any, kwargs: Any) -> Any:
    """Validate a message's args/kwargs against `model`; InvalidMessage says what is wrong."""
    if args:
        raise InvalidMessage(f"positional arguments are not accepted (got {len(args)}); use kwargs")
    if not isinstance(kwargs, dict):
        raise InvalidMessage(f"kwargs must be an object, got {type(kwargs).__name__}")
    try:
        # JSON carries datetimes as ISO-8601 strings: allow that one coercion.
        return model.model_validate_json(_to_json(kwargs))
    except (ValidationError, TypeError, ValueError) as exc:
        raise InvalidMessage(_summary(exc)) from exc


def _to_json(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, default=str)


def _summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'kwargs'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def json_schema() -> dict[str, Any]:
    """The JSON Schemas documented in the README for producers in other languages."""
    return {
        "crackq.classify": ClassifyArgs.model_json_schema(),
        "crackq.classify_many": ClassifyManyArgs.model_json_schema(),
    }

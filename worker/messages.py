"""The JSON argument schemas of crackq's tasks: what any Celery-protocol producer sends."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

MAX_REF_CHARS = 4096
MAX_ID_CHARS = 200  # results.request_id / batch_id / asset_id / inspection_id columns
MAX_VERSION_CHARS = 100  # model_versions.version
MAX_METADATA_BYTES = 4096  # a message's `metadata` object, as compact UTF-8 JSON
MAX_METADATA_DEPTH = 4  # the object itself is level 1
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


def _metadata(value: Any) -> dict[str, Any] | None:
    """A small JSON object PostgreSQL's jsonb can store: bounded size and depth."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {_json_type(value)}")
    _check_json(value, 1)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON, over the limit of {MAX_METADATA_BYTES}")
    return value


def _check_json(value: Any, depth: int) -> None:
    """Objects and arrays count as levels (the metadata object is level 1), scalars do not."""
    if isinstance(value, dict | list) and depth > MAX_METADATA_DEPTH:
        raise ValueError(f"nests objects or arrays deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)  # jsonb cannot hold NUL (\u0000) either
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, str):
        storable_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds a number JSON cannot carry (NaN or infinity)")


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


Text = Annotated[str, AfterValidator(storable_text)]
Timestamp = Annotated[dt.datetime | None, AfterValidator(_in_range)]
Metadata = Annotated[dict[str, Any] | None, BeforeValidator(_metadata)]


class AssetFields(BaseModel):
    """What a photo shows, all optional: stored on its row, read by crackq_assets_v1."""

    model_config = ConfigDict(extra="forbid", strict=True)

    asset_id: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="the inspected thing (a bridge pier, a pipe segment): rows with the same "
        "asset_id make one asset in crackq_assets_v1",
    )
    inspection_id: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="photos of one asset sharing an inspection_id are one inspection (crack "
        "when any of them is); without one, each photo is an inspection of its own",
    )
    captured_at: Timestamp = Field(
        None, description="when the photo was taken; orders an asset's inspections"
    )
    metadata: Metadata = Field(
        None,
        description=f"a free-form JSON object stored with the row: at most "
        f"{MAX_METADATA_BYTES} bytes as compact JSON, {MAX_METADATA_DEPTH} levels deep",
    )


class ClassifyArgs(AssetFields):
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
    rescore_version: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_VERSION_CHARS,
        description="re-score (crackq rescore): answer with this registered model version "
        "and overwrite the stored succeeded row's score (history kept in result_scores); "
        "absent for live photos, which the served version answers",
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

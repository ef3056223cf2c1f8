"""What the command modules share: a sessionmaker from the settings, JSON and row tables."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_sessionmaker
from db.tables import Result
from worker.settings import get_settings

COLUMNS = (
    "request_id",
    "status",
    "label",
    "confidence",
    "model_version",
    "error_code",
    "image_ref",
)


def sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(get_settings().database(), pool_size=2))


def to_json(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=str)


def row_fields(row: Any, names: Sequence[str]) -> dict[str, Any]:
    """The named attributes of an ORM row, for JSON output."""
    return {name: getattr(row, name) for name in names}


def render(rows: Sequence[Result], fmt: str) -> str:
    """Result rows as JSON, CSV or an aligned table."""
    if fmt == "json":
        return to_json([_as_dict(r) for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[c.name for c in Result.__table__.columns])
        writer.writeheader()
        writer.writerows(
            {k: to_json(v) if isinstance(v, dict) else v for k, v in _as_dict(r).items()}
            for r in rows
        )  # metadata (jsonb) as JSON text
        return buf.getvalue().rstrip("\n")
    table = [COLUMNS] + [tuple(cell(getattr(r, c)) for c in COLUMNS) for r in rows]
    widths = [min(60, max(len(row[i]) for row in table)) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(_fit(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def _as_dict(row: Result) -> dict[str, Any]:
    return {c.name: getattr(row, c.key) for c in Result.__table__.columns}


def _fit(cell: str, width: int) -> str:
    """Pad to `width`; long cells keep their end, where paths differ."""
    return (cell if len(cell) <= width else "…" + cell[-(width - 1) :]).ljust(width)


def dict_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 4) -> str:
    """An aligned text table of `columns` of `rows` (dicts), each cell as `cell` writes it."""
    cells = [list(columns)] + [[cell(row.get(c), digits) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def cell(value: Any, digits: int = 4) -> str:
    """A value for a text table: - for none, floats to `digits`, times in UTC."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)

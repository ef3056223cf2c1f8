"""`crackq models list | show V | promote V | rollback | history`: the model registry.

promote checks the promotion gates (worker.gates); shadow and compare: worker/cli/shadow.py.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import Any

from db import registry
from db.tables import ModelEvent
from worker import gates
from worker.cli.output import row_fields, sessions, to_json
from worker.modelcard import model_card
from worker.settings import get_settings

VERSION_FIELDS = (
    "version",
    "parent_version",
    "status",
    "checkpoint_uri",
    "sha256",
    "config",
    "metrics",
    "data_summary",
    "created_at",
    "promoted_at",
    "load_error",
)
EVENT_FIELDS = ("at", "action", "version", "previous_version", "actor", "reason")


def run_models(args: argparse.Namespace) -> int:
    with sessions()() as session, session.begin():
        if args.verb == "list":
            for v in registry.list_versions(session):
                m = v.metrics or {}
                print(
                    f"{v.version:<28} {v.status:<9} acc={_f(m.get('accuracy'))} auc={_f(m.get('auc'))} "
                    f"f1={_f(m.get('f1'))} int8={_int8(m)}{_worst_group(m)}"
                    f"  parent={v.parent_version or '-'}"
                    f"{'  LOAD FAILED' if v.load_error else ''}"
                )
            return 0
        if args.verb == "history":
            print(render_history(registry.history(session, args.limit), args.format))
            return 0
        by = args.by or getpass.getuser()
        if args.verb == "rollback":
            row = registry.rollback(session, by=by, reason=args.reason)
        else:
            if not args.version:
                raise ValueError(f"models {args.verb} needs a VERSION")
            rules = gates.Gates.from_settings(get_settings())
            row = (
                gates.promote(session, args.version, rules, by, args.reason, args.force)
                if args.verb == "promote"
                else registry.get(session, args.version)
            )
        fields = row_fields(row, VERSION_FIELDS)
        shown = args.verb == "show" and args.format != "json"
        print(model_card(fields) if shown else to_json(fields, indent=2))
    if args.verb in ("promote", "rollback"):
        print(
            f"promoted {row.version}; inference workers switch within "
            f"{get_settings().model_poll_s:g} s",
            file=sys.stderr,
        )
    return 0


def render_history(events: Sequence[ModelEvent], fmt: str) -> str:
    """Registry events, newest first, as JSON or an aligned table."""
    rows = [row_fields(e, EVENT_FIELDS) for e in events]
    if fmt == "json":
        return to_json(rows, indent=2)
    if not rows:
        return "no registry events yet"
    return "\n".join(_event_line(e) for e in events)


def _event_line(e: ModelEvent) -> str:
    was = f" (was {e.previous_version})" if e.previous_version else ""
    why = f": {e.reason}" if e.reason else ""
    return f"{e.at:%Y-%m-%d %H:%M:%S}  {e.action:<11} {e.version}{was}  by {e.actor}{why}"


def _int8(metrics: dict[str, Any]) -> str:
    """yes: the checkpoint carries an INT8 graph that passed its check; no; or - (not tried)."""
    if not metrics.get("int8"):
        return "-"
    return "yes" if metrics["int8"].get("passed") else "no"


def _worst_group(metrics: dict[str, Any]) -> str:
    """` worst_group=NAME:ACC`: the lowest per-group accuracy, when the run had groups."""
    report = metrics.get("groups") or {}
    worst = report.get("worst") or []
    return f" worst_group={str(worst[0]['group'])[:24]}:{_f(worst[0]['accuracy'])}" if worst else ""


def _f(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "-"

"""The models page: versions with their metrics and run reports; promote and roll back."""

from __future__ import annotations

import getpass
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from db import registry
from db.tables import ShadowScore, TrainingRun
from worker import gates
from worker.artifacts import ArtifactError, Stores
from worker.cli.models import EVENT_FIELDS, VERSION_FIELDS
from worker.cli.output import row_fields
from worker.modelcard import model_card
from worker.settings import get_settings
from worker.shadowreport import compare
from worker.ui.web import PostedForm, console, notify, render, require

router = APIRouter()
REPORT_IMAGES = ("training.png", "predictions.png")
HISTORY = 20
FLIPS_SHOWN = 8  # flipped photos shown each way, as thumbnails


@router.get("/models")
def versions(request: Request) -> Response:
    require(request, "viewer")
    with console(request).reading() as session:  # model_versions: a reporting surface
        rows = [row_fields(v, VERSION_FIELDS) for v in registry.list_versions(session)]
    with console(request).reading(reporting=False) as session:  # events, runs: not reporting's
        history = [row_fields(e, EVENT_FIELDS) for e in registry.history(session, HISTORY)]
        runs = _runs_by_version(session, [r["version"] for r in rows])
        stack = registry.promotion_stack(session)
        shadowed = set(session.scalars(select(ShadowScore.version).distinct()))
        comparisons = {v: compare(session, v, FLIPS_SHOWN) for v in sorted(shadowed)}
    current = next((r["version"] for r in rows if r["status"] == "promoted"), None)
    while stack and stack[-1] == current:
        stack.pop()
    for row in rows:
        row["card"] = model_card(row)
        row["reports"] = [n for n in REPORT_IMAGES if n in runs.get(row["version"], {})]
    return render(
        request,
        "models.html",
        versions=rows,
        history=history,
        rollback_to=stack[-1] if stack else None,
        comparisons=comparisons,
        refused=request.session.pop("refused", None),
    )


@router.get("/models/{version}/report/{name}")
def report_image(request: Request, version: str, name: str) -> Response:
    """A run report's image (training chart, prediction grid), from the artifact store."""
    require(request, "viewer")
    if name not in REPORT_IMAGES:
        raise HTTPException(404, f"a run report has {', '.join(REPORT_IMAGES)}, not {name!r}")
    state = console(request)
    with state.reading(reporting=False) as session:
        stored = _runs_by_version(session, [version]).get(version, {}).get(name)
    if stored is None:
        raise HTTPException(404, f"{version} has no {name}: it was not trained by crackq finetune")
    dest = state.artifacts_dir / f"{stored['sha256']}.png"
    if not dest.exists():
        try:
            Stores(state.sessions, state.s3_endpoint_url).fetch(
                stored["url"], stored["sha256"], dest
            )
        except (ArtifactError, OSError) as exc:
            raise HTTPException(502, f"cannot read {name} of {version}: {exc}") from exc
    return FileResponse(dest, media_type="image/png")


@router.post("/models/{version}/promote")
def promote(request: Request, version: str, form: PostedForm) -> Response:
    who = require(request, "operator")
    reason, force = _confirmed(form), form.get("force") == "yes"
    try:
        with console(request).writing() as session:
            rules = gates.Gates.from_settings(get_settings())
            gates.promote(session, version, rules, _actor(who.name), reason, force)
    except gates.GateRefused as exc:
        request.session["refused"] = {"version": version, "why": str(exc), "reason": reason}
        return RedirectResponse("/models", status_code=303)
    except registry.RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    notify(request, f"promoted {version}: workers switch within {get_settings().model_poll_s:g} s")
    return RedirectResponse("/models", status_code=303)


@router.post("/models/rollback")
def rollback(request: Request, form: PostedForm) -> Response:
    who = require(request, "operator")
    reason = _confirmed(form)
    try:
        with console(request).writing() as session:
            row = registry.rollback(session, by=_actor(who.name), reason=reason)
            version = row.version
    except registry.RegistryError as exc:
        notify(request, f"nothing to roll back to: {exc}")
    else:
        notify(request, f"rolled back: {version} serves again")
    return RedirectResponse("/models", status_code=303)


def _confirmed(form: dict[str, str]) -> str:
    """The reason of a confirmed model change; 400 without the confirmation or a reason."""
    if form.get("confirm") != "yes":
        raise HTTPException(400, "tick the confirmation box: a model change affects every worker")
    reason = re.sub(r"\s+", " ", form.get("reason", "")).strip()
    if not reason:
        raise HTTPException(400, "give a reason: the registry's history records it")
    return reason[:500]


def _actor(name: str) -> str:
    """Who the history records: the signed-in user, or the OS user on a loopback console."""
    return f"{getpass.getuser()} (console)" if name == "local" else f"{name} (console)"


def _runs_by_version(session: Any, versions: list[str]) -> dict[str, dict[str, Any]]:
    """Each version's run artifacts (name -> {url, sha256, size}), from its training run."""
    stmt = select(TrainingRun.model_version, TrainingRun.artifacts).where(
        TrainingRun.model_version.in_(versions)
    )
    return {v: dict(a or {}) for v, a in session.execute(stmt) if v is not None}

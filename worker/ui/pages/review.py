"""The review queue page: one photo at a time, answered with c / n / s, undone with u."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from db import review
from db.maps import read_map
from db.tables import Result
from worker.ui.web import PostedForm, console, notify, render, require

router = APIRouter()
UP_NEXT = 8  # entries listed (and their photos prefetched) after the one shown
PHOTO_SIDE = 1024
THUMB_SIDE = 160


@router.get("/review")
def queue(request: Request, reason: str | None = None) -> Response:
    require(request, "viewer")
    with console(request).reading() as session:
        entries = review.open_entries(session, reason=reason or None, limit=UP_NEXT + 1)
        counts = review.queue_counts(session)
    undo = request.session.get("last_answer")
    return render(
        request,
        "review.html",
        entry=entries[0] if entries else None,
        up_next=entries[1:],
        open_counts=counts.get("open", {}),
        decided={state: sum(n.values()) for state, n in counts.items() if state != "open"},
        reason=reason or "",
        reasons=sorted({r for by_reason in counts.values() for r in by_reason}),
        undo=undo,
    )


@router.post("/review/{request_id}/answer")
def answer(request: Request, request_id: str, form: PostedForm) -> Response:
    who = require(request, "reviewer")
    choice = form.get("answer", "")
    if choice not in review.ANSWERS:
        raise HTTPException(400, f"answer must be one of {', '.join(review.ANSWERS)}")
    try:
        with console(request).writing() as session:
            review.answer(session, request_id, choice, who.name)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:  # answered by someone else meanwhile
        notify(request, str(exc))
    else:
        request.session["last_answer"] = {"request_id": request_id, "answer": choice}
        notify(request, f"{request_id}: {_said(choice)}")
    return _back(form)


@router.post("/review/{request_id}/undo")
def undo(request: Request, request_id: str, form: PostedForm) -> Response:
    require(request, "reviewer")
    try:
        with console(request).writing() as session:
            review.undo(session, request_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        notify(request, str(exc))
    else:
        notify(request, f"{request_id}: open again, its label removed")
    request.session.pop("last_answer", None)
    return _back(form)


@router.get("/photo/{request_id}")
def photo(request: Request, request_id: str, overlay: int = 1, side: int = PHOTO_SIDE) -> Response:
    """A result's photo as JPEG, its crack map drawn over it unless `overlay=0`."""
    require(request, "viewer")
    side = max(64, min(side, 2048))
    with console(request).reading() as session:
        row = session.scalars(select(Result).where(Result.request_id == request_id)).first()
        if row is None:
            raise HTTPException(404, f"no result with request id {request_id!r}")
        ref, version = row.image_ref, row.model_version
        stored = read_map(session, request_id) if overlay and row.mode == "map" else None
    key = (request_id, version, stored is not None, side)
    shown = console(request).photos.show(ref, key, stored, side)
    if shown.jpeg is None:
        return Response(
            f"cannot show the photo of {request_id} ({ref}): {shown.error}",
            status_code=422,
            media_type="text/plain",
        )
    return Response(
        shown.jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"}
    )


def _said(choice: str) -> str:
    return "skipped" if choice == review.SKIP else f"labelled {choice}"


def _back(form: dict[str, str]) -> RedirectResponse:
    reason = form.get("reason", "")
    return RedirectResponse(f"/review?reason={reason}" if reason else "/review", status_code=303)

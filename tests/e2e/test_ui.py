"""`crackq ui` over HTTP: logins and roles, CSRF, answers and undo, photos, model changes.

A real console process on loopback over the test database; rows are written as the
worker writes them (results, review entries, registry rows). The browser tests
(test_ui_browser.py) drive the same pages through Chromium.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import select

from db import registry, shadow
from db.tables import Label, ModelEvent, Result, ReviewEntry
from harness.procs import CONSOLE_READY, console, free_port, listening, wait_until
from worker.ui.auth import hash_password

pytestmark = [pytest.mark.usefixtures("clean_tables"), pytest.mark.slow]
T0 = dt.datetime(2026, 11, 2, 8, tzinfo=dt.timezone.utc)
USERS = "rita:reviewer:{},vic:viewer:look,olga:operator:ops"


def seed(sessions, photos: Path) -> None:
    """Three uncertain photos in the queue, an asset inspected twice, two model versions."""
    photos.mkdir()
    with sessions() as s, s.begin():
        for i, rgb in enumerate([(200, 10, 10), (120, 120, 120), (210, 0, 0)]):
            path = photos / f"p{i}.png"
            Image.new("RGB", (96, 96), rgb).save(path)
            s.add(Result(request_id=f"p{i}", image_ref=str(path), status="succeeded",
                         label="crack", confidence=0.55, crack_probability=0.55,
                         model_version="v1", mode="patch"))  # fmt: skip
        s.add(Result(request_id="z-outside", image_ref="/etc/hostname", status="succeeded",
                     label="no_crack", confidence=0.9, crack_probability=0.1))  # fmt: skip
        for n, (label, p) in enumerate([("no_crack", 0.1), ("crack", 0.9)], 1):
            s.add(Result(request_id=f"pier-{n}", image_ref=str(photos / "p0.png"),
                         status="succeeded", label=label, confidence=max(p, 1 - p),
                         crack_probability=p, asset_id="pier 7", inspection_id=f"visit-{n}",
                         captured_at=T0 + dt.timedelta(days=30 * n)))  # fmt: skip
        s.flush()
        for i in range(3):
            s.add(ReviewEntry(request_id=f"p{i}", reason="uncertain"))
        s.add(ReviewEntry(request_id="z-outside", reason="sample"))
        for v in ("v1", "v2"):
            registry.register(s, version=v, checkpoint_uri=f"/nowhere/{v}.pt", sha256="0" * 64,
                              architecture="resnet50", metrics={"auc": 0.9})  # fmt: skip
        registry.promote(s, "v1", by="test")
        shadow.write_scores(  # v2 shadowed p0 (live crack) and p1: it clears p0
            s,
            [
                {"request_id": "p0", "version": "v2", "label": "no_crack",
                 "crack_probability": 0.2, "mode": "patch"},
                {"request_id": "p1", "version": "v2", "label": "crack",
                 "crack_probability": 0.7, "mode": "patch"},
            ],
        )  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, sessions):
    """A console with three accounts (rita's password stored hashed); yields its URL."""
    photos = tmp_path / "photos"
    seed(sessions, photos)
    port = free_port()
    env = {
        "CRACKQ_UI_USERS": USERS.format(hash_password("pw", iterations=1000)),
        "CRACKQ_ALLOWED_ROOTS": str(photos),
        "CRACKQ_DATA_DIR": str(tmp_path / "state"),
    }
    with console(tmp_path, port, env) as proc:
        proc.wait_for_log(CONSOLE_READY, 60)
        assert wait_until(lambda: listening(port), 30), proc.log()
        yield f"http://127.0.0.1:{port}"
        log = proc.log()
    assert "Traceback" not in log, log[-3000:]


def token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def login(url: str, name: str, password: str) -> requests.Session:
    web = requests.Session()
    page = web.get(f"{url}/login", timeout=10).text
    r = web.post(f"{url}/login", data={"csrf": token(page), "name": name,
                                       "password": password, "next": "/review"}, timeout=10)  # fmt: skip
    assert r.status_code == 200 and r.url.endswith("/review"), (r.status_code, r.text[:500])
    return web


def open_ids(sessions) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(ReviewEntry.request_id).where(ReviewEntry.state == "open")))


def test_pages_need_a_login_and_roles_decide_what_a_user_may_do(site: str, sessions) -> None:
    anonymous = requests.get(f"{site}/assets", timeout=10)
    assert anonymous.url.endswith("/login?next=/assets") and "Sign in" in anonymous.text
    photo = requests.get(f"{site}/photo/p0", timeout=10, allow_redirects=False)
    assert photo.status_code == 303  # not even a photo without a login

    web = requests.Session()
    page = web.get(f"{site}/login", timeout=10).text
    wrong = web.post(f"{site}/login", data={"csrf": token(page), "name": "rita",
                                            "password": "nope"}, timeout=10)  # fmt: skip
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    for elsewhere in ("//evil.example/x", "/\\evil.example", "https://evil.example"):
        away = web.post(f"{site}/login", allow_redirects=False, timeout=10, data={
            "csrf": token(page), "name": "vic", "password": "look", "next": elsewhere})  # fmt: skip
        assert (away.status_code, away.headers["location"]) == (303, "/review"), elsewhere
        page = web.get(f"{site}/login", timeout=10).text  # signing in made a new session

    viewer = login(site, "vic", "look")
    page = viewer.get(f"{site}/review", timeout=10).text
    assert "vic · viewer" in page and 'id="read-only"' in page and "answer-crack" not in page
    refused = viewer.post(f"{site}/review/p0/answer", data={"csrf": token(page),
                                                            "answer": "crack"}, timeout=10)  # fmt: skip
    assert refused.status_code == 403 and "needs the reviewer role" in refused.text
    assert open_ids(sessions) == {"p0", "p1", "p2", "z-outside"}

    reviewer = login(site, "rita", "pw")
    page = reviewer.get(f"{site}/review", timeout=10).text
    assert 'data-request-id="p0"' in page
    forged = reviewer.post(f"{site}/review/p0/answer", data={"answer": "crack"}, timeout=10)
    assert forged.status_code == 403 and "CSRF" in forged.text
    stale = reviewer.post(f"{site}/review/p0/answer", timeout=10,
                          data={"answer": "crack", "csrf": token(page)[:-2] + "xx"})  # fmt: skip
    assert stale.status_code == 403
    assert open_ids(sessions) == {"p0", "p1", "p2", "z-outside"}

    ok = reviewer.post(f"{site}/review/p0/answer", data={"csrf": token(page),
                                                         "answer": "no_crack"}, timeout=10)  # fmt: skip
    assert ok.status_code == 200 and "p0: labelled no_crack" in ok.text
    assert 'data-request-id="p1"' in ok.text and "undo (u)" in ok.text
    with sessions() as s:
        label = s.scalars(select(Label)).one()
    assert (label.request_id, label.label, label.labelled_by) == ("p0", "no_crack", "rita")
    undone = reviewer.post(f"{site}/review/p0/undo", data={"csrf": token(ok.text)}, timeout=10)
    assert undone.status_code == 200 and "p0: open again" in undone.text
    with sessions() as s:
        assert s.scalars(select(Label)).first() is None
    assert "p0" in open_ids(sessions)

    models = reviewer.post(f"{site}/models/v2/promote", timeout=10,
                           data={"csrf": token(page), "reason": "x", "confirm": "yes"})  # fmt: skip
    assert models.status_code == 403 and "needs the operator role" in models.text


def test_photos_come_through_the_guarded_reader(site: str) -> None:
    web = login(site, "vic", "look")
    photo = web.get(f"{site}/photo/p1?side=64", timeout=10)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    img = Image.open(BytesIO(photo.content))
    assert img.size == (64, 64) and abs(img.getpixel((32, 32))[0] - 120) < 8
    refused = web.get(f"{site}/photo/z-outside", timeout=10)
    assert refused.status_code == 422 and "allowed" in refused.text, refused.text
    assert web.get(f"{site}/photo/nobody", timeout=10).status_code == 404


def test_operators_promote_with_a_reason_and_roll_back(site: str, sessions) -> None:
    web = login(site, "olga", "ops")
    page = web.get(f"{site}/models", timeout=10).text
    assert "v1" in page and "v2" in page and 'id="rollback-form"' not in page
    shadowed = page[page.index('id="shadow-v2"') :]
    assert "Shadow v2 on live traffic" in shadowed and "50.00%" in shadowed  # 1 of 2 agree
    assert "0 no_crack → crack, 1 crack → no_crack" in shadowed
    assert 'src="/photo/p0?side=160"' in shadowed.split("</section>")[0]
    unconfirmed = web.post(f"{site}/models/v2/promote", timeout=10,
                           data={"csrf": token(page), "reason": "better"})  # fmt: skip
    assert unconfirmed.status_code == 400 and "confirmation" in unconfirmed.text
    done = web.post(f"{site}/models/v2/promote", timeout=10,
                    data={"csrf": token(page), "reason": "better  on\npier 7", "confirm": "yes"})  # fmt: skip
    assert done.status_code == 200 and "promoted v2" in done.text
    assert 'id="rollback-form"' in done.text and "roll back to v1" in done.text
    with sessions() as s:
        assert registry.promoted(s).version == "v2"
        event = s.scalars(select(ModelEvent).order_by(ModelEvent.id.desc())).first()
    assert (event.action, event.actor, event.reason) == (
        "promote",
        "olga (console)",
        "better on pier 7",
    )
    back = web.post(f"{site}/models/rollback", timeout=10,
                    data={"csrf": token(done.text), "reason": "regressed", "confirm": "yes"})  # fmt: skip
    assert back.status_code == 200 and "rolled back: v1 serves again" in back.text
    with sessions() as s:
        assert registry.promoted(s).version == "v1"


def test_the_asset_page_flags_a_new_crack(site: str) -> None:
    web = login(site, "vic", "look")
    listing = web.get(f"{site}/assets", timeout=10).text
    assert "pier 7" in listing and "NEW CRACK" in listing
    page = web.get(f"{site}/assets/pier%207", timeout=10).text
    assert 'id="new-crack"' in page and "NEW CRACK since 2026-12-02" in page
    assert page.count("<circle") == 2 and "visit-2" in page
    assert web.get(f"{site}/assets/nowhere", timeout=10).status_code == 404


def test_a_loopback_console_without_accounts_needs_no_login(tmp_path: Path, sessions) -> None:
    seed(sessions, tmp_path / "photos")
    port = free_port()
    env = {"CRACKQ_ALLOWED_ROOTS": str(tmp_path / "photos"), "CRACKQ_DATA_DIR": str(tmp_path)}
    with console(tmp_path, port, env) as proc:
        proc.wait_for_log(CONSOLE_READY, 60)
        assert wait_until(lambda: listening(port), 30), proc.log()
        web = requests.Session()
        page = web.get(f"http://127.0.0.1:{port}/review", timeout=10)
        assert page.status_code == 200 and "local · operator" in page.text
        assert "answer-crack" in page.text and "sign out" not in page.text

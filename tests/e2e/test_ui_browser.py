"""The console in a real browser (Debian's Chromium through its chromedriver, headless).

A worker serving a hand-set checkpoint with known answers (harness.colour_model: crack
exactly when a photo is strongly red) fills the review queue: three dim-red photos score
p 0.56 (uncertain), a 256 px photo is mapped with a weak region (borderline_map), and the
asset `bridge` is inspected clean, then with a crack. A reviewer labels three photos with
the keyboard, undoes one and labels it again; a fine-tune with --labels counts them; the
asset page shows the new crack; a viewer cannot label; a form without its CSRF token is
refused. Screenshots of each page, and each page's load time, go to CRACKQ_TEST_ARTIFACTS
(else the test's tmp folder).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from db.tables import Label, ReviewEntry
from harness import browser
from harness.colour_model import register_colour_models
from harness.procs import CONSOLE_READY, READY, console, free_port, listening, wait_until, worker
from models.synthetic import make_synthetic_dataset
from worker.messages import AssetFields
from worker.waiting import wait_rows

pytestmark = [pytest.mark.usefixtures("redis_client", "clean_tables"), pytest.mark.slow]
RED, GREY, DIM = (255, 0, 0), (128, 128, 128), (215, 0, 0)
USERS = "rita:reviewer:pw-rita,vic:viewer:pw-vic"
KEYS = {"c": "crack", "n": "no_crack"}


def browser_or_skip():
    why = browser.missing()
    if why:
        pytest.skip(why)
    return browser.chromium()


def solid(path: Path, rgb: tuple[int, int, int], side: int = 64) -> str:
    Image.new("RGB", (side, side), rgb).save(path, format="PNG")
    return str(path)


def mapped(path: Path, tiles: dict[tuple[int, int], tuple[int, int, int]]) -> str:
    """256 px grey, 4 x 4 tiles of 64, with `tiles` painted."""
    img = Image.new("RGB", (256, 256), GREY)
    for (r, c), rgb in tiles.items():
        img.paste(rgb, (c * 64, r * 64, c * 64 + 64, r * 64 + 64))
    img.save(path, format="PNG")
    return str(path)


@pytest.fixture
def served(tmp_path: Path, sessions) -> Iterator[tuple[str, Path]]:
    """Photos classified by a real worker, then a console over them; yields (url, photos)."""
    from worker.app import app
    from worker.enqueue import submit

    metrics = {"auc": 0.97, "accuracy": 0.95, "f1": 0.94}
    register_colour_models(sessions, tmp_path, {"red-v1": "red"}, "red-v1", metrics)
    photos = tmp_path / "photos"
    photos.mkdir()
    refs = {f"dim-{i}": solid(photos / f"dim-{i}.png", DIM) for i in range(3)}
    refs["map"] = mapped(photos / "map.png", {(0, 0): RED, (0, 1): RED, (3, 2): DIM, (3, 3): DIM})
    t0 = dt.datetime(2026, 10, 5, 9, tzinfo=dt.timezone.utc)
    visits = {
        "bridge-1": (solid(photos / "bridge-1.png", GREY, 256), t0),
        "bridge-2": (mapped(photos / "bridge-2.png", {(1, 1): RED, (1, 2): RED, (2, 2): RED}),
                     t0 + dt.timedelta(days=61)),
    }  # fmt: skip
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos), "CRACKQ_BATCH_SIZE": "8"}
    env |= {"CRACKQ_BACKEND": "torch", "CRACKQ_PRECISION": "fp32", "CRACKQ_REVIEW_SAMPLE_RATE": "0"}

    with worker(tmp_path, "ui", env=env) as w:
        w.wait_for_log(READY, 180)
        submit(app, sessions, list(refs.values()), request_ids=list(refs))
        for rid, (ref, when) in visits.items():  # the second visit after the first is stored
            asset = AssetFields(asset_id="bridge", inspection_id=rid, captured_at=when)
            submit(app, sessions, [ref], request_ids=[rid], asset=asset)
            done = wait_rows(sessions, [rid], 120, progress=False)
            assert sum(done.values()) == 1 and not done.get("queued"), w.log()[-3000:]
        done = wait_rows(sessions, list(refs), 180, progress=False)
        assert not done.get("queued"), w.log()[-3000:]

    port = free_port()
    env = {"CRACKQ_UI_USERS": USERS, "CRACKQ_ALLOWED_ROOTS": str(photos),
           "CRACKQ_DATA_DIR": str(tmp_path / "state")}  # fmt: skip
    with console(tmp_path, port, env) as proc:
        proc.wait_for_log(CONSOLE_READY, 60)
        assert wait_until(lambda: listening(port), 30), proc.log()
        yield f"http://127.0.0.1:{port}", photos
        log = proc.log()
    assert "Traceback" not in log, log[-3000:]


def open_entries(sessions) -> dict[str, str]:
    with sessions() as s:
        rows = s.execute(
            select(ReviewEntry.request_id, ReviewEntry.reason).where(ReviewEntry.state == "open")
        )
        return dict(rows.all())


def test_a_reviewer_works_the_queue_with_the_keyboard(served, sessions, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, photos = served
    shots = Path(os.environ.get("CRACKQ_TEST_ARTIFACTS") or tmp_path / "artifacts") / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    queued = open_entries(sessions)
    assert set(queued) == {"dim-0", "dim-1", "dim-2", "map", "bridge-2"}, queued
    assert [queued[f"dim-{i}"] for i in range(3)] == ["uncertain"] * 3
    assert queued["map"] == "borderline_map", queued
    loads: dict[str, float] = {}
    driver = browser_or_skip()
    wait = WebDriverWait(driver, 20)

    def visit(path: str, name: str) -> None:
        driver.get(url + path)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        loads[name] = driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].duration"
        )

    def shown() -> str:
        return driver.find_element(By.ID, "entry").get_attribute("data-request-id")

    def press(key: str) -> None:
        before = driver.find_element(By.TAG_NAME, "main")
        driver.find_element(By.TAG_NAME, "body").send_keys(key)
        wait.until(ec.staleness_of(before))  # the answer's form posted, the next page loaded

    try:
        visit("/review", "login_redirect")
        assert "/login" in driver.current_url
        driver.find_element(By.ID, "name").send_keys("rita")
        driver.find_element(By.ID, "password").send_keys("pw-rita")
        driver.find_element(By.ID, "sign-in").click()
        wait.until(ec.presence_of_element_located((By.ID, "entry")))
        visit("/review?reason=borderline_map", "review")
        wait.until(lambda d: browser.loaded(d, "photo"))
        assert shown() == "map"
        driver.save_screenshot(str(shots / "review.png"))

        visit("/review?reason=uncertain", "review_uncertain")
        answered: dict[str, str] = {}
        for key in ("c", "n", "c"):
            rid = shown()
            press(key)
            answered[rid] = KEYS[key]
        assert set(answered) == {"dim-0", "dim-1", "dim-2"}
        assert "Nothing to review for uncertain" in driver.find_element(By.ID, "empty").text
        press("u")  # the last answer undone: that photo is back, first in line
        assert shown() == rid and rid in open_entries(sessions)
        press("c")
        assert set(open_entries(sessions)) == {"map", "bridge-2"}
        with sessions() as s:
            labels = {r.request_id: (r.label, r.labelled_by) for r in s.scalars(select(Label))}
        assert labels == {rid: (answer, "rita") for rid, answer in answered.items()}
        visit("/review", "review_after")
        total = driver.find_element(By.ID, "open-total").text
        assert total == "2" and "3 labelled" in driver.find_element(By.ID, "queue-counts").text

        # a form posted without its CSRF token is refused and changes nothing
        driver.execute_script(
            "const f = document.querySelector('button#answer-crack').form;"
            "f.querySelector('input[name=csrf]').remove(); f.submit();"
        )
        detail = wait.until(ec.presence_of_element_located((By.ID, "error-detail"))).text
        assert "CSRF" in detail and set(open_entries(sessions)) == {"map", "bridge-2"}

        visit("/assets/bridge", "asset")
        wait.until(lambda d: browser.loaded(d, "latest-photo"))
        flag = driver.find_element(By.ID, "new-crack").text
        assert flag.startswith("NEW CRACK since 2026-10-05"), flag
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart circle")) == 2
        driver.save_screenshot(str(shots / "asset.png"))
        visit("/assets", "assets")

        from tests.worker.finetuning import run
        from worker.settings import Settings
        from worker.trainingdata import DataSpec

        data = tmp_path / "train"
        (tmp_path / "runs").mkdir()
        make_synthetic_dataset(data, 12, size=64, seed=5)
        settings = Settings(data_dir=tmp_path / "state", allowed_roots=[photos])
        outcome, row, _ = run(sessions, tmp_path / "runs", DataSpec(folders=[str(data)],
                              use_labels=True), settings=settings)  # fmt: skip
        assert outcome["status"] == "succeeded", row.message
        assert row.data_summary["labels"] == {"labelled": 3, "used": 3, "from_review": 3}

        visit("/models", "models")
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        wait.until(lambda d: d.execute_script(
            "const r = [...document.querySelectorAll('img.report')];"
            "return r.length == 2 && r.every(i => i.complete && i.naturalWidth > 0)"
        ))  # fmt: skip
        driver.save_screenshot(str(shots / "models.png"))
        assert "red-v1" in driver.find_element(By.ID, "versions").text
        assert row.model_version in driver.find_element(By.ID, "versions").text

        # a viewer sees the queue, but keys answer nothing
        driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait.until(ec.presence_of_element_located((By.ID, "name")))
        driver.find_element(By.ID, "name").send_keys("vic")
        driver.find_element(By.ID, "password").send_keys("pw-vic")
        driver.find_element(By.ID, "sign-in").click()
        wait.until(ec.presence_of_element_located((By.ID, "read-only")))
        before = shown()
        driver.find_element(By.TAG_NAME, "body").send_keys("c")
        assert not driver.find_elements(By.ID, "answer-crack") and shown() == before
        assert set(open_entries(sessions)) == {"map", "bridge-2"}
    finally:
        driver.quit()
        (shots / "page_load_ms.json").write_text(json.dumps(loads, indent=2))
    print(f"screenshots in {shots}; page loads (ms): {json.dumps(loads)}")

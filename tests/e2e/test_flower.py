"""Flower, started with `crackq flower` on the same broker, sees the worker and its tasks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests

from harness import images
from harness.procs import READY, Proc, free_port, worker

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
AUTH = ("ops", "s3cret-test")


def poll(url: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, auth=AUTH, timeout=5)
            if last.status_code == 200 and check(last.json()):
                return last.json()
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"{url} never satisfied the check; last answer: {last and last.text[:500]}"
    )


def test_flower_lists_worker_and_classify_task(tmp_path: Path, sessions) -> None:
    from worker.app import app
    from worker.enqueue import submit

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flower = Proc(
        [sys.executable, "-m", "worker.cli", "flower", f"--port={port}"],
        tmp_path / "flower.log",
        env={"CRACKQ_FLOWER_BASIC_AUTH": ":".join(AUTH)},
    )
    root = tmp_path / "img"
    root.mkdir()
    (root / "a.jpg").write_bytes(images.jpeg(227, 227))
    with flower, worker(tmp_path, "flowerw", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        flower.wait_for_log(r"Visit me at|Registered tasks", 60)
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        workers = poll(f"{base}/api/workers?refresh=1", lambda j: "flowerw@localhost" in j)
        assert "crackq.classify" in workers["flowerw@localhost"]["registered"]
        sub = submit(app, sessions, [str(root / "a.jpg")])
        tasks = poll(
            f"{base}/api/tasks?taskname=crackq.classify",
            lambda j: sub.request_ids[0] in j and j[sub.request_ids[0]]["state"] == "SUCCESS",
        )
        task = tasks[sub.request_ids[0]]
        assert task["worker"] == "flowerw@localhost"
        assert "label" in (task["result"] or "")

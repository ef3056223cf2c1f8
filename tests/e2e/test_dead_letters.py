"""Malformed and pickle messages are refused, recorded with a reason, and never executed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from db.tables import DeadLetter, Result
from harness import images
from harness.procs import READY, worker

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


class Boom:
    """Unpickling this would create a file: proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bad_messages_become_dead_letters_and_the_worker_goes_on(tmp_path: Path, sessions) -> None:
    from worker.app import CLASSIFY_TASK, INFERENCE_QUEUE, app

    root = tmp_path / "img"
    root.mkdir()
    (root / "ok.jpg").write_bytes(images.jpeg(227, 227))
    marker = tmp_path / "pwned"
    bad = {
        "missing": {},
        "unknown-field": {"image_ref": str(root / "ok.jpg"), "colour": "red"},
        "wrong-type": {"image_ref": 42},
    }
    for task_id, kwargs in bad.items():
        app.send_task(CLASSIFY_TASK, kwargs=kwargs, task_id=task_id, queue=INFERENCE_QUEUE)
    app.send_task(
        CLASSIFY_TASK,
        kwargs={"image_ref": Boom(marker)},
        task_id="pickled",
        queue=INFERENCE_QUEUE,
        serializer="pickle",
    )
    app.send_task(
        CLASSIFY_TASK,
        kwargs={"image_ref": str(root / "ok.jpg"), "request_id": "good"},
        task_id="good",
        queue=INFERENCE_QUEUE,
    )
    with worker(tmp_path, "dl", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sessions() as s:
                letters = {d.task_id: d for d in s.scalars(select(DeadLetter))}
                good = s.scalar(select(Result).where(Result.request_id == "good"))
            if len(letters) == 4 and good is not None and good.status == "succeeded":
                break
            time.sleep(0.5)
        assert w.proc is not None and w.proc.poll() is None
    assert set(letters) == {"missing", "unknown-field", "wrong-type", "pickled"}, letters
    assert "image_ref" in letters["missing"].reason
    assert "colour" in letters["unknown-field"].reason
    assert "pickle" in letters["pickled"].reason and letters["pickled"].payload["body_base64"]
    assert not marker.exists(), "the pickle payload was executed"
    assert good is not None and good.status == "succeeded"

    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "dead-letters", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        out.returncode == 0
        and out.stdout.count("\n") == 4
        and "untrusted content of type pickle" in out.stdout
    )

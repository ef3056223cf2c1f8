"""The `crackq` command as a user runs it, against a real worker."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import images
from harness.procs import READY, worker

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def crackq(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


COMMANDS = (
    "submit",
    "classify",
    "results",
    "map",
    "worker",
    "flower",
    "migrate",
    "finetune",
    "models",
    "label",
    "review",
    "demo",
    "status",
    "requeue",
    "schema",
    "assets",
)


def test_every_command_explains_itself() -> None:
    from worker.cli.main import build_parser

    out = crackq("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout
        sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        assert sub.format_help().startswith("usage: crackq " + command)
        assert sub.description or sub.format_help().count("--") >= 1


def test_classify_a_folder_then_query_results(tmp_path: Path) -> None:
    root = tmp_path / "site7"
    root.mkdir()
    for i in range(6):
        (root / f"p{i}.jpg").write_bytes(images.jpeg(227, 227))
    (root / "broken.jpg").write_bytes(images.truncated_jpeg())
    with worker(tmp_path, "cliw", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        out = crackq("classify", "--dir", str(root), "--batch-id", "site7", "--format", "json")
        assert out.returncode == 0, out.stderr
        assert "7/7 finished" in out.stdout
        assert "failed with truncated_image: 1" in out.stdout
        rows = json.loads(out.stdout[out.stdout.index("[") :])
        assert len(rows) == 7

        status = crackq("status")
        assert status.returncode == 0, status.stderr
        assert "queue inference: 0 waiting" in status.stdout
        # every live worker, the version it serves and where Prometheus scrapes it
        served = r"\n  cliw@localhost: serves \S+, metrics http://127\.0\.0\.1:\d+/metrics"
        assert re.search(served, status.stdout), status.stdout
        finished = re.search(r"results: 0 queued, (\d+) finished in the last minute", status.stdout)
        assert finished and int(finished.group(1)) >= 7, status.stdout

        refs = tmp_path / "refs.txt"
        refs.write_text(f"# comment\n{root / 'p0.jpg'}\n\n{root / 'p1.jpg'}\n")
        sub = crackq("submit", "--from-file", str(refs), "--json")
        assert sub.returncode == 0, sub.stderr
        assert len(json.loads(sub.stdout)["request_ids"]) == 2

    out = crackq("results", "--batch-id", "site7", "--format", "csv", "--limit", "0")
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(table) == 7
    assert {r["status"] for r in table} == {"succeeded", "failed"}
    failed = crackq("results", "--batch-id", "site7", "--status", "failed")
    assert "truncated_image" in failed.stdout
    assert len(failed.stdout.strip().splitlines()) == 2  # header + the one failed row


def test_useful_error_without_references() -> None:
    out = crackq("submit")
    assert out.returncode == 2
    assert "no image references given" in out.stderr


def test_requeue_resends_rows_whose_messages_were_lost(
    tmp_path: Path, redis_client, engine
) -> None:
    """The kombu gap: a message taken from Redis by a worker killed before it recorded it."""
    from sqlalchemy import text

    root = tmp_path / "site"
    root.mkdir()
    for i in range(3):
        (root / f"p{i}.jpg").write_bytes(images.jpeg(227, 227))
    refs = [str(root / f"p{i}.jpg") for i in range(3)]
    out = crackq("submit", *refs, "--batch-id", "lost", "--json")
    assert out.returncode == 0, out.stderr
    old, old2, new = json.loads(out.stdout)["request_ids"]
    redis_client.delete("inference")  # the messages vanish; the rows stay queued
    with engine.begin() as conn:  # two of them were queued two hours ago
        conn.execute(
            text(
                "UPDATE results SET created_at = now() - interval '2 hours' "
                "WHERE request_id IN (:a, :b)"
            ),
            {"a": old, "b": old2},
        )
    status = crackq("status")
    assert re.search(r"\n  2 queued for more than \d+ s", status.stdout), status.stdout

    dry = crackq("requeue", "--dry-run", "--older-than", "3600")
    assert dry.returncode == 0, dry.stderr
    assert old in dry.stdout and old2 in dry.stdout and new not in dry.stdout
    assert redis_client.llen("inference") == 0

    out = crackq("requeue", "--older-than", "3600")
    assert out.returncode == 0, out.stderr
    assert "re-sent 2 messages" in out.stdout
    assert redis_client.llen("inference") == 2
    with worker(tmp_path, "requeue", env={"CRACKQ_ALLOWED_ROOTS": str(root)}) as w:
        w.wait_for_log(READY, 120)
        for _ in range(120):
            with engine.connect() as conn:
                done = conn.execute(
                    text("SELECT request_id, status FROM results WHERE batch_id = 'lost'")
                ).all()
            if sum(s == "succeeded" for _, s in done) == 2:
                break
            time.sleep(0.5)
    assert dict(done) == {old: "succeeded", old2: "succeeded", new: "queued"}
    assert crackq("requeue", "--older-than", "-1").returncode == 2


def test_label_refuses_results_that_did_not_succeed(engine) -> None:
    """A failed or refused row never decoded its image: labelling it would train on anything."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO results (request_id, image_ref, status, error_code) VALUES "
                "('ok', '/data/a.jpg', 'succeeded', NULL), "
                "('broken', '/data/b.jpg', 'failed', 'truncated_image'), "
                "('refused', '/etc/shadow', 'failed', 'path_not_allowed'), "
                "('waiting', '/data/c.jpg', 'queued', NULL)"
            )
        )
    for request_id, status in (("broken", "failed"), ("refused", "failed"), ("waiting", "queued")):
        out = crackq("label", request_id, "crack", "--by", "tester")
        assert out.returncode == 2, out.stdout + out.stderr
        assert request_id in out.stderr and status in out.stderr and "succeeded" in out.stderr
        assert "labelled" not in out.stdout
    missing = crackq("label", "nobody", "crack")
    assert missing.returncode == 2 and "no result with request id 'nobody'" in missing.stderr
    out = crackq("label", "ok", "no_crack", "--by", "tester")
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        labels = conn.execute(text("SELECT request_id, label, labelled_by FROM labels")).all()
    assert labels == [("ok", "no_crack", "tester")]


def test_finetune_recipe_card_stores_the_reference_card(
    tmp_path: Path, redis_client, sessions
) -> None:
    """`--recipe card` queues a run whose stored recipe is the card's, flags still win."""
    from db import runs
    from models.recipe import CARD, Recipe

    data = tmp_path / "site"
    for cls in ("Positive", "Negative"):
        (data / cls).mkdir(parents=True)
        (data / cls / "a.jpg").write_bytes(images.jpeg(227, 227))
    out = crackq("finetune", "--data", str(data), "--recipe", "card")
    assert out.returncode == 0, out.stderr
    card_run = out.stdout.strip().splitlines()[-1]
    out = crackq("finetune", "--data", str(data), "--recipe", "card", "--epochs", "2")
    assert out.returncode == 0, out.stderr
    two_epochs = out.stdout.strip().splitlines()[-1]
    with sessions() as s:
        stored = runs.get_run(s, card_run).config["recipe"]
        overridden = runs.get_run(s, two_epochs).config["recipe"]
    limit = stored["time_limit_s"]  # start_run fills in CRACKQ_TRAINING_TIME_LIMIT_S
    assert stored == {**CARD.to_dict(), "time_limit_s": limit}
    assert (stored["batch_size"], stored["epochs"], stored["lr"], stored["weight_decay"]) == (
        32, 5, 1e-3, 0.0,
    )  # fmt: skip
    assert (stored["augment"], stored["precise_bn_images"], stored["grad_clip"]) == (
        "card",
        0,
        None,
    )
    expected = {**CARD.to_dict(), "epochs": 2, "time_limit_s": limit}
    assert Recipe.from_dict(overridden) == Recipe.from_dict(expected)
    assert redis_client.llen("training") == 2


def test_models_show_prints_the_model_card(engine) -> None:
    from sqlalchemy.orm import sessionmaker

    from db import registry
    from models.recipe import Recipe

    check = {"photos": 2, "per_class": {"no_crack": 1, "crack": 1}, "threshold": 0.5,
             "seconds": 1.0, "mean_accuracy": 0.5, "worst_shift": "blur", "worst_accuracy": 0.5,
             "shifts": [{"shift": "clean", "simulates": "-", "accuracy": 1.0, "f1": 1.0},
                        {"shift": "blur", "simulates": "-", "accuracy": 0.5, "f1": 0.0}]}  # fmt: skip
    with sessionmaker(engine)() as s, s.begin():
        registry.register(
            s, version="card-v1", checkpoint_uri="/nowhere.pt", sha256="0" * 64,
            architecture="resnet50", config=Recipe().to_dict(),
            metrics={"accuracy": 0.99, "f1": 0.99, "auc": 0.999, "shift_check": check},
            data_summary={"sources": "folder /site", "train": {"no_crack": 8, "crack": 8},
                          "val": {"no_crack": 2, "crack": 2}, "split": "grouped"},
        )  # fmt: skip
    out = crackq("models", "show", "card-v1")
    assert out.returncode == 0, out.stderr
    assert "trained on: folder /site" in out.stdout and "training: 16 photos" in out.stdout
    assert "worst blur 0.5000" in out.stdout
    assert "Not checked on other datasets" in out.stdout
    as_json = json.loads(crackq("models", "show", "card-v1", "--format", "json").stdout)
    assert as_json["metrics"]["shift_check"]["worst_shift"] == "blur"

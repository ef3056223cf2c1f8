"""Operators' commands: registry history and rollback, dead runs on read, status of stuck work."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from db import deadletters, registry, runs

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")


def crackq(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


def test_promote_and_rollback_record_who_and_why_and_history_shows_them(sessions) -> None:
    with sessions() as s, s.begin():
        for v in ("A", "B", "C"):
            registry.register(
                s, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r50"
            )
    for v in ("A", "B", "C"):
        assert crackq("models", "promote", v, "--reason", f"try {v}").returncode == 0
    out = crackq("models", "rollback", "--by", "alice", "--reason", "C misses hairlines")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"] == "B"
    assert json.loads(crackq("models", "rollback").stdout)["version"] == "A"
    out = crackq("models", "history", "--format", "json")
    events = [(e["action"], e["version"], e["previous_version"]) for e in json.loads(out.stdout)]
    assert events == [
        ("rollback", "A", "B"),
        ("rollback", "B", "C"),
        ("promote", "C", "B"),
        ("promote", "B", "A"),
        ("promote", "A", None),
    ]
    newest = json.loads(out.stdout)[1]
    assert (newest["actor"], newest["reason"]) == ("alice", "C misses hairlines")
    table = crackq("models", "history").stdout.splitlines()
    assert "rollback" in table[1] and "B (was C)  by alice: C misses hairlines" in table[1]
    assert f"by {getpass.getuser()}: try A" in table[-1]
    out = crackq("models", "rollback")
    assert out.returncode == 2 and "no earlier promoted version" in out.stderr


def test_finetune_list_fails_a_run_whose_worker_stopped_beating(
    sessions, engine, redis_client
) -> None:
    with sessions() as s, s.begin():
        runs.create_run(s, "deadrun", {"recipe": {}}, {})
        runs.claim_run(s, "deadrun", "training-9@gone")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE training_runs SET heartbeat_at = now() - interval '10 minutes' "
                "WHERE run_id = 'deadrun'"
            )
        )
    out = crackq("finetune", "list")
    assert out.returncode == 0, out.stderr
    assert "deadrun  failed" in out.stdout and "worker died: no heartbeat since" in out.stdout
    out = crackq("finetune", "retry", "deadrun")
    assert out.returncode == 0, out.stderr
    with sessions() as s:
        assert runs.get_run(s, out.stdout.strip()).retry_of == "deadrun"
    redis_client.delete("training")  # no later training worker may take the retry


def test_status_shows_stuck_rows_and_dead_letters_waiting(sessions, engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO results (request_id, image_ref, status, created_at) VALUES "
                "('stuck', '/x.jpg', 'queued', now() - interval '2 hours')"
            )
        )
    with sessions() as s, s.begin():
        deadletters.add(s, task_id="t1", task_name="crackq.classify", reason="bad", payload={})
    out = crackq("status")
    assert out.returncode == 0, out.stderr
    assert "  1 queued for more than 600 s (stuck?)" in out.stdout, out.stdout
    assert "dead letters: 1 waiting" in out.stdout, out.stdout
    assert "unacked: 0 messages held by workers" in out.stdout, out.stdout

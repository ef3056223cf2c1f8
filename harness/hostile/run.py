"""Hostile and odd image references through one real worker: each must end as its expected row."""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness.hostile.cases import NAMES, PUBLIC_IP, SUCCEEDED, Case, build_cases, good_cases
from harness.hostile.servers import MAX_BYTES, Services, loopback_services
from harness.netjail import jail_env, jail_report
from harness.procs import READY, worker

log = logging.getLogger(__name__)
HTTP_TIMEOUT_S = 1.0


def _worker_env(tmp: Path, svc: Services) -> tuple[dict[str, str], Path]:
    env, jail_log = jail_env(tmp / "netjail", NAMES, {PUBLIC_IP: "127.0.0.1"})
    env.update(
        CRACKQ_ALLOWED_ROOTS=str(tmp / "allowed"),
        CRACKQ_ALLOW_PRIVATE_URLS="false",
        CRACKQ_HTTP_TIMEOUT_S=str(HTTP_TIMEOUT_S),
        CRACKQ_MAX_IMAGE_BYTES=str(MAX_BYTES),
        CRACKQ_BATCH_SIZE="8",
        # boto3 must never look for credentials on the metadata address
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    if svc.s3_endpoint:
        env["CRACKQ_S3_ENDPOINT_URL"] = svc.s3_endpoint
    return env, jail_log


def submit_and_collect(cases: list[Case], sessions: Any, timeout_s: float) -> list[dict[str, Any]]:
    """Submit every case through the producer API, wait for their rows, one table row each."""
    from sqlalchemy import select

    from db.tables import Result
    from worker.app import app
    from worker.enqueue import submit

    batch = f"hostile-{uuid.uuid4().hex[:8]}"
    sub = submit(app, sessions, [c.ref for c in cases], batch_id=batch)
    deadline = time.monotonic() + timeout_s
    while True:
        with sessions() as s:
            found = {
                r.request_id: r for r in s.scalars(select(Result).where(Result.batch_id == batch))
            }
        pending = [r for r in found.values() if r.status == "queued"]
        if (not pending and len(found) == len(cases)) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    rows = []
    for case, rid in zip(cases, sub.request_ids, strict=True):
        row = found.get(rid)
        if row is None or row.status == "queued":
            got = "queued (timed out)"
        else:
            got = row.status if row.status == SUCCEEDED else str(row.error_code)
            if row.status != SUCCEEDED:
                log.info("%s -> %s: %s", case.input, got, row.error_message)
        expected = str(getattr(case.expected, "value", case.expected))  # ErrorCode -> its value
        rows.append({"input": case.input, "expected": expected, "got": got,
                     "ok": got == expected})  # fmt: skip
    return rows


def hostile_inputs(tmp: Path, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every hostile/odd input through one `crackq worker`, then good ones through the same.

    Uses whatever database and broker crackq's settings point at; starts and stops its own
    worker subprocess and loopback servers. Rows: input, expected, got, ok. The last two
    rows say whether the worker survived and whether it tried to leave loopback.
    """
    from db.session import make_engine, make_sessionmaker
    from worker.settings import get_settings

    tmp.mkdir(parents=True, exist_ok=True)
    engine = make_engine(get_settings().database(), pool_size=2)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        svc = stack.enter_context(loopback_services())
        cases = build_cases(tmp, svc)
        env, jail_log = _worker_env(tmp, svc)
        w = stack.enter_context(worker(tmp, f"hostile-{os.getpid()}", env=env))
        w.wait_for_log(READY, 300)
        sessions = make_sessionmaker(engine)
        rows = submit_and_collect(cases, sessions, timeout_s)
        rows += submit_and_collect(good_cases(tmp, svc), sessions, timeout_s)
        alive = w.alive()
    installed, escapes = jail_report(jail_log)
    rows.append({"input": "worker still running after all of them", "expected": "running",
                 "got": "running" if alive else "exited", "ok": alive})  # fmt: skip
    rows.append({"input": "DNS or connects beyond loopback (worker jail)", "expected": "none",
                 "got": ", ".join(escapes) or ("none" if installed else "jail not installed"),
                 "ok": installed and not escapes})  # fmt: skip
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table (for logs and reports)."""
    widths = [max(len(str(r[k])) for r in rows + [{k: k for k in rows[0]}]) for k in rows[0]]
    lines = ["  ".join(str(k).ljust(w) for k, w in zip(rows[0], widths, strict=True))]
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r.values(), widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)

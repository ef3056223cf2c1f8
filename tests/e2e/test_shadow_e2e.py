"""Shadow versions through a real worker: scores beside untouched results, compare, gates.

Two real checkpoints with known answers (harness.colour_model): the promoted one calls red
photos cracks, the shadowed one green photos. Photos of four colours go through the queue;
the shadow's flips are planted (red: crack -> no_crack, green: no_crack -> crack), and
operators' labels agree with the live model, so the shadow is worse on labelled photos.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import registry, runs
from db.tables import Result, ShadowScore
from harness import images
from harness.colour_model import COLOURS, register_colour_models
from harness.procs import READY, wait_until, worker
from worker.shadow import sampled

pytestmark = pytest.mark.usefixtures("redis_client", "clean_tables")
PER_COLOUR = 8
FRACTION = 0.5
RED_IS_CRACK = {"red": "crack", "yellow": "crack", "green": "no_crack", "grey": "no_crack"}
GREEN_IS_CRACK = {"red": "no_crack", "yellow": "crack", "green": "crack", "grey": "no_crack"}


def crackq(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


def test_a_shadow_version_scores_live_traffic_then_gates_and_force(
    tmp_path: Path, sessions
) -> None:
    from worker.app import app
    from worker.enqueue import submit

    models = {"red-v1": "red", "green-v2": "green"}
    register_colour_models(sessions, tmp_path, models, promote="red-v1")
    out = crackq("models", "shadow", "green-v2", "--fraction", str(FRACTION))
    assert out.returncode == 0, out.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    refs, colour_of = [], {}
    for colour, rgb in COLOURS.items():
        for i in range(PER_COLOUR):
            path = photos / f"{colour}-{i}.jpg"
            path.write_bytes(images.jpeg(64, 64, color=rgb, quality=95))
            refs.append(str(path))
            colour_of[str(path)] = colour

    # The worker starts after the shadow was set, as a restarted worker would.
    env = {"CRACKQ_ALLOWED_ROOTS": str(photos), "CRACKQ_BATCH_SIZE": "8"}
    env |= {"CRACKQ_BACKEND": "torch", "CRACKQ_PRECISION": "fp32"}
    with worker(tmp_path, "shadow", env=env) as w:
        w.wait_for_log(READY, 180)
        w.wait_for_log(r"shadowing green-v2 on 0\.5 of live photos", 120)
        sub = submit(app, sessions, refs, batch_id="shadow-e2e")
        wanted = {rid for rid in sub.request_ids if sampled(rid, FRACTION)}
        assert 0 < len(wanted) < len(refs)

        def stored() -> bool:
            with sessions() as s:
                done = s.scalar(
                    select(func.count()).where(
                        Result.batch_id == "shadow-e2e", Result.status != "queued"
                    )
                )
                scored = s.scalar(select(func.count()).select_from(ShadowScore))
            return done == len(refs) and scored == len(wanted)

        assert wait_until(stored, 180), w.log()[-3000:]
        time.sleep(1.0)  # nothing more may arrive: every shadow row is one sampled photo
        log = w.log()
    assert "Traceback" not in log, log[-3000:]

    with sessions() as s:
        rows = {r.request_id: r for r in s.scalars(select(Result))}
        scores = {x.request_id: x for x in s.scalars(select(ShadowScore))}
    colour = {rid: colour_of[ref] for rid, ref in zip(sub.request_ids, refs, strict=True)}
    # results: the promoted version's answers only, as if no shadow existed
    assert {r.model_version for r in rows.values()} == {"red-v1"}
    assert all(r.label == RED_IS_CRACK[colour[rid]] for rid, r in rows.items())
    # shadow_scores: exactly the sampled photos, with the shadow's answers
    assert set(scores) == wanted
    assert all(x.version == "green-v2" and x.mode == "patch" for x in scores.values())
    assert all(x.label == GREEN_IS_CRACK[colour[rid]] for rid, x in scores.items())

    # compare finds the planted flips, each way, by request id
    out = crackq("models", "compare", "green-v2", "--json", "--flips", "100")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    to_crack = sorted(rid for rid in wanted if colour[rid] == "green")
    to_no_crack = sorted(rid for rid in wanted if colour[rid] == "red")
    assert sorted(report["flips"]["to_crack"]["request_ids"]) == to_crack
    assert sorted(report["flips"]["to_no_crack"]["request_ids"]) == to_no_crack
    assert report["shadowed"] == len(wanted) and report["live_versions"] == {"red-v1": len(wanted)}
    assert report["flip_rate"] == pytest.approx(len(to_crack + to_no_crack) / len(wanted), abs=1e-5)
    assert crackq("models", "compare", "green-v2").stdout.startswith(
        f"shadow green-v2: {len(wanted)} shadowed photos (shadowing 0.5 of live photos)"
    )

    # operators label every shadowed photo (the live model is right): the gate refuses
    with sessions() as s, s.begin():
        for rid in wanted:
            runs.set_label(s, rid, RED_IS_CRACK[colour[rid]], "inspector")
    gated = {"CRACKQ_PROMOTE_REQUIRE_LABELLED_ACCURACY": "true", "CRACKQ_PROMOTE_MIN_SHADOWED": "4"}
    out = crackq("models", "promote", "green-v2", **gated)
    assert out.returncode == 2 and "refused by its gates" in out.stderr, out.stderr
    shadow_right = len(wanted) - len(to_crack) - len(to_no_crack)
    n = len(wanted)
    assert f"accuracy on {n} labelled photos {shadow_right / n:.4f} below live 1.0000" in out.stderr
    with sessions() as s:
        assert registry.promoted(s).version == "red-v1"

    out = crackq("models", "promote", "green-v2", "--force", "--reason", "drill", **gated)
    assert out.returncode == 0, out.stderr
    history = json.loads(crackq("models", "history", "--format", "json").stdout)
    assert [e["action"] for e in history[:3]] == ["shadow_off", "promote", "shadow_on"]
    assert history[1]["version"] == "green-v2"
    assert history[1]["reason"].startswith("FORCED past promotion gates (accuracy on ")
    assert history[1]["reason"].endswith("): drill")
    assert crackq("models", "shadow").stdout.startswith("no version is shadowed")


def test_the_shadow_benchmark_measures_both_sides_in_one_run() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--suite", "shadow", "--n", "32", "--warmup", "8"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {x["bench"]: x for x in map(json.loads, out.stdout.strip().splitlines())}
    assert list(lines) == ["shadow_off", "shadow_on", "shadow_off_after", "shadow_summary"]
    assert lines["shadow_on"]["shadow_scores"] == 32 and lines["shadow_off"]["shadow_scores"] == 0
    assert not any(lines[p]["timed_out"] for p in ("shadow_off", "shadow_on", "shadow_off_after"))
    summary = lines["shadow_summary"]
    assert summary["ratio"] == pytest.approx(
        lines["shadow_on"]["images_per_s"] / summary["images_per_s_off"], abs=0.01
    )
    assert summary["target"] == 0.45 and summary["cpu"]

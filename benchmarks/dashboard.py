"""The Grafana dashboard on a real run: every panel's PromQL evaluated by a real Prometheus, drawn.

    .venv/bin/python -m benchmarks.run --suite dashboard [--n 2000] [-o docs/dashboard.png]

A private Prometheus (Debian's `prometheus` package) scrapes one worker's /metrics every
second while benchmarks.load's load run serves N real photos; then each panel of
ops/grafana/dashboards/crackq.json is queried over the run with the panel's own
expressions and legends, and drawn on the dashboard's own grid into one PNG, as Grafana
would show it (Grafana itself is not packaged for Debian; compose's `--profile metrics`
runs it). One JSON line: per panel, its series and any expression Prometheus refused.
Exit status 1 when an expression is refused or a panel that the run feeds has no data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.procs import ROOT, free_port
from harness.prometheus import PrometheusServer, Series

log = logging.getLogger(__name__)
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "crackq.json"
# Panels a load run has nothing for: it trains nothing.
IDLE_IN_A_LOAD_RUN = {"Training", "Training images/s"}


def legend(fmt: str | None, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: `{{name}}` replaced by the series' label."""
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def evaluate(
    prom: PrometheusServer, dashboard: dict[str, Any], start: float, end: float, step_s: float
) -> list[dict[str, Any]]:
    """Each panel's targets over [start, end]: its lines (legend, series) and refused exprs."""
    panels = []
    for panel in dashboard["panels"]:
        lines: list[tuple[str, Series]] = []
        errors = []
        for target in panel.get("targets", []):
            try:
                found = prom.range(target["expr"], start, end, step_s)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            lines += [(legend(target.get("legendFormat"), s.labels), s) for s in found]
        panels.append({"panel": panel, "lines": lines, "errors": errors})
    return panels


def scaled(unit: str | None, value: float) -> tuple[float, str]:
    if unit == "bytes":
        return value / 2**20, "MiB"
    if unit == "percentunit":
        return 100 * value, "%"
    if unit == "s":
        return value, "s"
    return value, {"ops": "/s"}.get(unit or "", "")


def draw(panels: list[dict[str, Any]], title: str, out: Path, start: float) -> None:
    """The panels on the dashboard's 24-column grid, dark as Grafana's default theme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(p["panel"]["gridPos"]["y"] + p["panel"]["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(18, rows * 0.42), facecolor="#111217")
    grid = fig.add_gridspec(
        rows, 24, hspace=1.6, wspace=0.8, top=0.95, bottom=0.03, left=0.03, right=0.99
    )
    fig.suptitle(title, color="#d8d9da", fontsize=14, x=0.01, ha="left")
    for p in panels:
        pos, kind = p["panel"]["gridPos"], p["panel"]["type"]
        ax = fig.add_subplot(
            grid[pos["y"] : pos["y"] + pos["h"] - 1, pos["x"] : pos["x"] + pos["w"]]
        )
        ax.set_facecolor("#181b1f")
        ax.set_title(p["panel"]["title"], color="#d8d9da", fontsize=10, loc="left")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        for side in ax.spines.values():
            side.set_color("#2c3235")
        unit = p["panel"].get("fieldConfig", {}).get("defaults", {}).get("unit")
        if p["errors"] or not p["lines"]:
            text = "refused: " + p["errors"][0][:60] if p["errors"] else "No data"
            ax.text(0.5, 0.5, text, color="#8e8e8e", ha="center", va="center", fontsize=9,
                    transform=ax.transAxes)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        elif kind == "timeseries":
            for name, series in p["lines"]:
                xs = [(t - start) / 60 for t, _ in series.points]
                ys = [scaled(unit, v)[0] for _, v in series.points]
                ax.plot(xs, ys, linewidth=1.4, label=name or "value")
            ax.set_xlabel("minutes into the run", color="#8e8e8e", fontsize=7)
            ax.set_ylabel(scaled(unit, 0)[1], color="#8e8e8e", fontsize=7)
            ax.grid(color="#2c3235", linewidth=0.5)
            ax.legend(fontsize=7, facecolor="#181b1f", edgecolor="#2c3235", labelcolor="#d8d9da")
        else:  # stat and table: the last value of each series, as text
            shown = [(name, series.points[-1][1]) for name, series in p["lines"]][:6]
            for i, (name, value) in enumerate(shown):
                v, suffix = scaled(unit, value)
                text = f"{name}: {v:,.0f}{suffix}" if kind == "stat" else name
                ax.text(0.04, 0.85 - i * 0.16, text, color="#73bf69", fontsize=9 if kind ==
                        "stat" else 7, transform=ax.transAxes, va="top")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor())
    plt.close(fig)


def summary(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "panel": p["panel"]["title"],
            "series": len(p["lines"]),
            "points": sum(len(s.points) for _, s in p["lines"]),
            "last": {name: round(s.points[-1][1], 4) for name, s in p["lines"][:12] if s.points},
            "refused": p["errors"],
        }
        for p in panels
    ]


def problems(rows: list[dict[str, Any]]) -> list[str]:
    """Refused expressions, and panels with no data that a load run should have fed."""
    bad = [f"{r['panel']}: {e}" for r in rows for e in r["refused"]]
    bad += [
        f"{r['panel']}: no data"
        for r in rows
        if r["series"] == 0 and r["panel"] not in IDLE_IN_A_LOAD_RUN
    ]
    return bad


def dashboard_run(tmp: Path, n: int, out: Path, photos: Any, engine: Any) -> dict[str, Any]:
    """A load run of `n` photos scraped by Prometheus; the dashboard drawn to `out`.

    One reference in a hundred (at least 5) names a missing file, submitted first, so the
    failure panels show their not_found rows.
    """
    from benchmarks.load import load_run
    from worker.app import app
    from worker.enqueue import submit
    from worker.runtime import get_sessions

    dashboard = json.loads(DASHBOARD.read_text())
    port = free_port()
    with PrometheusServer(tmp / "prometheus", [f"127.0.0.1:{port}"]) as prom:
        start = time.time()
        missing = [str(photos.root / f"missing-{i}.jpg") for i in range(max(5, n // 100))]
        submit(app, get_sessions(), missing, batch_id="dashboard-missing")
        load = load_run(tmp, n, photos, engine, port=port)
        time.sleep(3 * prom.interval_s)  # the last scrapes after the last rows
        end = time.time()
        panels = evaluate(prom, dashboard, start, end, step_s=max(1.0, (end - start) / 300))
    from benchmarks.cpu import cpu_model

    what = f"{n:,} {'synthetic' if photos.synthetic else 'real'} photos (+{len(missing)} missing), one worker"
    host = f"{cpu_model()}, {os.cpu_count()} cores"
    draw(panels, f"crackq: load run of {what}, {load['images_per_s']} img/s ({host})", out, start)
    rows = summary(panels)
    return {
        "bench": "dashboard",
        "png": str(out),
        "panels": rows,
        "problems": problems(rows),
        "load": {k: load[k] for k in ("submitted", "stored", "lost", "duplicated", "images_per_s")},
        "missing": len(missing),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "wall_s": round(end - start, 1),
    }


def main(argv: list[str], prog: str) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--n", type=int, default=2000, help="photos in the load run (default 2000)")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "dashboard.png",
                    help="the PNG to write (default docs/dashboard.png)")  # fmt: skip
    args = ap.parse_args(argv)
    from benchmarks import services

    services.point_settings_here()
    with (
        services.bench_services(min(args.n, 2000)) as (photos, engine),
        tempfile.TemporaryDirectory(prefix="crackq-dashboard-") as tmp,
    ):
        result = dashboard_run(Path(tmp), args.n, args.out, photos, engine)
    print(json.dumps(result))
    for problem in result["problems"]:
        log.error("%s", problem)
    return 0 if not result["problems"] and result["load"]["lost"] == 0 else 1

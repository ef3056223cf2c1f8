"""benchmarks/gpu_check.sh's Python side: the GPU probe, a record per step, dry-run checks, the table.

`python -m benchmarks.gpu_summary devices | record DIR STEP ... | check ARGS... | table DIR`.
Each step of the check writes `DIR/STEP.out` (stdout: JSON lines, or pytest's report) and
`DIR/STEP.log` (stderr); `record` reads them for the step's key figure and appends one JSON
line to `DIR/steps.jsonl`, which `table` turns into the summary.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMED_OUT = (124, 137)  # timeout(1): the step ran past its limit (137: it had to be killed)
PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")
Figure = tuple[str, str | None]  # (key figure, the problem that fails an rc-0 step, if any)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of `path` (other lines and a missing file: none)."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def by_bench(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(line.get("bench", line.get("benchmark"))): line for line in lines}


def gpu_figure(out: Path) -> Figure:
    probe = by_bench(json_lines(out)).get("gpu")
    if probe is None:
        return "", "no probe line"
    names = probe["devices"]
    figure = f"{len(names)} x {names[0]}" if names else "no CUDA device"
    figure += f"; launcher GPUs {probe['launcher_gpus'] or 'none'}"
    return figure, None if probe["cuda"] and names else "torch sees no CUDA device"


def pytest_figure(out: Path) -> Figure:
    text = out.read_text(errors="replace") if out.is_file() else ""
    lines = [line for line in text.splitlines() if PYTEST_COUNTS.search(line)]
    if not lines:
        return "", "no pytest summary line"
    counts = {kind.rstrip("s"): int(n) for n, kind in PYTEST_COUNTS.findall(lines[-1])}
    figure = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if counts.get("skipped"):  # on a GPU host every selected case must run
        return figure, f"{counts['skipped']} skipped (no CUDA device, or no photos?)"
    return figure, None if counts.get("passed") else "no test passed"


def bench_problem(found: dict[str, dict[str, Any]]) -> str | None:
    errors = [f"{name}: {line['error']}" for name, line in found.items() if "error" in line]
    timed_out = [name for name, line in found.items() if line.get("timed_out")]
    if errors or timed_out:
        return "; ".join(errors + [f"{name} timed out" for name in timed_out])
    return None


def speed_figure(out: Path) -> Figure:
    found = by_bench(json_lines(out))
    parts = []
    if "fastest" in (model := found.get("model", {})):
        parts.append(f"model {model['fastest_images_per_s']} img/s ({model['fastest']})")
    decode = found.get("decode", {})
    if threads := [v for k, v in decode.items() if k.startswith("threads_")]:
        best = max(v["images_per_s"] for v in threads)
        parts.append(f"decode {best} photos/s")
    if "images_per_s" in (e2e := found.get("e2e", {})):
        parts.append(f"e2e {e2e['images_per_s']} img/s over {e2e['images']} photos")
    if "images_per_s" in (inproc := found.get("inprocess", {})):
        parts.append(f"inprocess {inproc['images_per_s']} img/s (batch {inproc['batch']})")
    problem = bench_problem(found) or (None if parts else "no benchmark line")
    return ", ".join(parts), problem


def train_figure(out: Path) -> Figure:
    line = by_bench(json_lines(out)).get("train_quick")
    if line is None:
        return "", "no train_quick line"
    if line.get("status") != "ok":
        return "", f"training {line.get('status')}: {line.get('reason')}"
    return f"train {line['train_images_per_s']} img/s, accuracy {line['accuracy']}", None


def gpu_usage(csv: Path) -> dict[str, dict[str, float]]:
    """Per GPU, from nvidia-smi's index,utilization.gpu,memory.used CSV: peaks, busy samples."""
    peaks: dict[str, dict[str, float]] = {}
    lines = csv.read_text(errors="replace").splitlines() if csv.is_file() else []
    for row in lines:
        cells = [c.strip() for c in row.split(",")]
        if len(cells) != 3 or not all(c.replace(".", "").isdigit() for c in cells[1:]):
            continue
        peak = peaks.setdefault(cells[0], {"util": 0.0, "mib": 0.0, "busy_samples": 0})
        peak["util"] = max(peak["util"], float(cells[1]))
        peak["mib"] = max(peak["mib"], float(cells[2]))
        peak["busy_samples"] += float(cells[1]) > 0
    return peaks


def multi_gpu_figure(out: Path) -> Figure:
    figure, problem = speed_figure(out)
    probe = by_bench(json_lines(out.with_name("gpu.out"))).get("gpu", {})
    wanted = len(str(probe.get("launcher_gpus", "")).split(","))
    peaks = gpu_usage(out.with_name("multi_gpu.smi.csv"))
    # Two busy samples (1 s): a GPU that only loaded a model and sat idle shows none.
    busy = [gpu for gpu, peak in peaks.items() if peak["busy_samples"] >= 2]
    shown = "; ".join(f"GPU {g} {p['util']:.0f}% {p['mib']:.0f} MiB" for g, p in peaks.items())
    figure = f"{len(busy)}/{wanted} GPUs busy ({shown}); {figure}"
    return figure, problem or (None if len(busy) >= wanted else "not every GPU consumed")


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "gpu": gpu_figure,
    "parity": pytest_figure,
    "compiled": pytest_figure,
    "speed": speed_figure,
    "queue": speed_figure,
    "train": train_figure,
    "multi_gpu": multi_gpu_figure,
}


def record(
    out_dir: Path,
    step: str,
    rc: int,
    seconds: float,
    command: str = "",
    limit_s: float | None = None,
    skipped: str | None = None,
    not_run: str | None = None,
) -> dict[str, Any]:
    """The step's status, seconds and key figure, appended to out_dir/steps.jsonl."""
    figure, problem = "", None
    if skipped is None and not_run is None:
        try:
            figure, problem = FIGURES.get(step, lambda _: ("", None))(out_dir / f"{step}.out")
        except (KeyError, TypeError, ValueError) as exc:  # an output shape this did not expect
            problem = f"unreadable output: {type(exc).__name__}: {exc}"
    if skipped is not None:
        status, reason = "skipped", skipped
    elif not_run is not None:
        status, reason = "failed", f"not run: {not_run}"
    elif rc in TIMED_OUT:
        status, reason = "failed", f"timed out after {limit_s or seconds:.0f} s"
    elif rc != 0:
        status, reason = "failed", "; ".join(filter(None, [f"exit code {rc}", problem]))
    else:
        status, reason = ("failed", problem) if problem else ("ok", None)
    line = {
        "step": step,
        "status": status,
        "seconds": round(seconds, 1),
        "rc": rc,
        "figure": figure,
        "reason": reason,
        "command": command,
    }
    with (out_dir / "steps.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def table(out_dir: Path) -> tuple[str, bool]:
    """The summary table of out_dir/steps.jsonl, and whether any step failed."""
    steps = json_lines(out_dir / "steps.jsonl")
    rows = [("step", "status", "seconds", "key figure / reason")]
    for s in steps:
        shown = " - ".join(filter(None, [s["figure"], s["reason"]]))
        rows.append((s["step"], s["status"], f"{s['seconds']:.0f}", shown))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]:>{width[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "  ".join("-" * w for w in [*width, 19]))
    failed = [s["step"] for s in steps if s["status"] == "failed"]
    lines.append(
        f"{len(steps)} steps, {len(failed)} failed{': ' if failed else ''}"
        f"{', '.join(failed)}; output in {out_dir}"
    )
    return "\n".join(lines), bool(failed) or not steps


def devices() -> dict[str, Any]:
    """What torch sees and which GPUs `crackq worker` would start a process on."""
    import torch

    from worker.launch import gpu_indices

    cuda = torch.cuda.is_available()
    names = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    )
    return {
        "bench": "gpu",
        "cuda": cuda,
        "devices": names,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "launcher_gpus": ",".join(gpu_indices(None, "cuda")),
    }


def check_args(argv: list[str]) -> None:
    """Parse `python -m benchmarks.run ARGV` as the suite would (SystemExit 2 when wrong)."""
    import importlib

    from benchmarks.run import SUITES

    chooser = argparse.ArgumentParser(prog="benchmarks.run", add_help=False)
    chooser.add_argument("--suite", choices=SUITES, default="speed")
    chosen, rest = chooser.parse_known_args(argv)
    module = importlib.import_module(SUITES[chosen.suite][0])
    prog = f"benchmarks.run --suite {chosen.suite}"
    if chosen.suite == "speed":  # the default suite's parser also takes an epilog
        module.parse_args(rest, prog, None)
    else:
        module.parse_args(rest, prog)


def service_warnings() -> list[str]:
    """Warnings for the loopback services the benchmarks need and this host lacks."""
    from sqlalchemy.engine import make_url

    from benchmarks.services import BROKER_URL, PG_ADMIN_URL

    warnings = []
    for what, url, default in (("PostgreSQL", PG_ADMIN_URL, 5432), ("Redis", BROKER_URL, 6379)):
        parsed = make_url(url)
        host, port = parsed.host or "127.0.0.1", parsed.port or default
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            warnings.append(
                f"warning: no {what} at {host}:{port} ({exc}): the benchmarks will fail"
            )
    return warnings


def check(command_lines: list[str]) -> list[str]:
    """A dry run's errors: each `benchmarks.run` argument line must parse; services warned about."""
    errors = []
    for line in command_lines:
        try:
            check_args(shlex.split(line))
        except SystemExit as exc:  # argparse has printed why on stderr
            if exc.code:
                errors.append(f"error: python -m benchmarks.run does not take: {line}")
    for warning in service_warnings():
        print(warning)
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_summary", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("devices", help="one JSON line: CUDA devices and the launcher's GPUs")
    rec = sub.add_parser("record", help="append a step's record to DIR/steps.jsonl")
    rec.add_argument("out_dir", type=Path, metavar="DIR")
    rec.add_argument("step")
    rec.add_argument("--rc", type=int, default=0)
    rec.add_argument("--seconds", type=float, default=0.0)
    rec.add_argument("--limit", dest="limit_s", type=float, help="the step's timeout (s)")
    rec.add_argument("--command", default="", help="the command line, as run")
    rec.add_argument("--skipped", metavar="REASON")
    rec.add_argument("--not-run", metavar="REASON", help="a step that should have run and did not")
    chk = sub.add_parser("check", help="dry run: parse each `benchmarks.run` argument line")
    chk.add_argument("lines", nargs="*", metavar="ARGS", help="one quoted argument line each")
    tab = sub.add_parser("table", help="the summary table of DIR/steps.jsonl; exit 1 if any failed")
    tab.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.action == "devices":
        print(json.dumps(found := devices()))
        return 0 if found["cuda"] else 1
    if args.action == "record":
        line = record(**{k: v for k, v in vars(args).items() if k != "action"})
        shown = " - ".join(filter(None, [line["figure"], line["reason"]]))
        print(f"      {line['status']} in {line['seconds']:.0f} s{': ' if shown else ''}{shown}")
        return 0
    if args.action == "check":
        errors = check(args.lines)
        print("\n".join(errors or ["benchmark arguments ok"]))
        return 1 if errors else 0
    text, failed = table(args.dir)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The reliability suite's report: four markdown tables, and whether everything survived."""

from __future__ import annotations

from typing import Any

Rows = list[dict[str, Any]]


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def yes(ok: Any) -> str:
    return "yes" if ok else "**NO**"


def faults_table(faults: Rows) -> str:
    return table(
        ["fault", "survived", "lost", "duplicated", "wall s", "detail"],
        [
            [f["fault"], yes(f.get("survived")), f.get("lost", "?"), f.get("duplicated", "?"),
             f.get("wall_s", ""), f.get("detail", "")]
            for f in faults
        ],
    )  # fmt: skip


def hostile_table(hostile: Rows | str) -> str:
    if isinstance(hostile, str):
        return hostile  # why it was not run
    return table(
        ["input", "expected", "got", "ok"],
        [[h["input"], h["expected"], h["got"], yes(h["ok"])] for h in hostile],
    )


def rows_table(faults: Rows, load: dict[str, Any] | str) -> str:
    """Images submitted vs rows stored, per run and in total."""
    runs = [(f["fault"], f) for f in faults if "submitted" in f]
    if isinstance(load, dict):
        runs.append((f"load run ({load.get('submitted')} photos)", load))
    totals = [sum(int(r.get(k, 0)) for _, r in runs) for k in ("submitted", "stored", "lost")]
    dup = sum(int(r.get("duplicated", 0)) for _, r in runs)
    return table(
        ["run", "submitted", "rows stored", "lost", "duplicated"],
        [[name, r["submitted"], r["stored"], r["lost"], r["duplicated"]] for name, r in runs]
        + [["**total**", *totals, dup]],
    )


def rss_table(load: dict[str, Any] | str) -> str:
    if isinstance(load, str):
        return load  # why it was not run
    rss = load.get("rss_mb", {})
    start, end = rss.get("start"), rss.get("end")
    growth = f"{end - start:+.1f} MiB" if start and end else "?"
    return table(
        ["start MiB", "middle MiB", "end MiB", "growth", "images/s", "wall s"],
        [[start, rss.get("middle"), end, growth, load.get("images_per_s"),
          load.get("wall_s", load.get("seconds"))]],
    )  # fmt: skip


def report(faults: Rows, hostile: Rows | str, load: dict[str, Any] | str) -> str:
    """The four markdown tables."""
    sections = [
        ("Faults injected", faults_table(faults)),
        ("Bad inputs and their codes", hostile_table(hostile)),
        ("Images submitted vs rows stored", rows_table(faults, load)),
        ("Worker RSS over the load run", rss_table(load)),
    ]
    return "\n\n".join(f"## {title}\n\n{body}" for title, body in sections)


def passed(faults: Rows, hostile: Rows | str, load: dict[str, Any] | str) -> bool:
    ok = all(f.get("survived") for f in faults)
    ok = ok and (isinstance(hostile, str) or all(h["ok"] for h in hostile))
    return ok and (isinstance(load, str) or (load["lost"] == 0 and load["duplicated"] == 0))

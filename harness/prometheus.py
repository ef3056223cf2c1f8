"""Prometheus of our own: a private server on a loopback port scraping given targets, and its API.

The dashboard suite and its test run the real server (Debian's `prometheus` package), so
every PromQL expression in ops/grafana is evaluated by Prometheus itself, not by us.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.procs import free_port, terminate, wait_until

MISSING = (
    "the prometheus binary is not on PATH (Debian: apt-get install --no-install-recommends "
    "prometheus; .ci/run installs it)"
)


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class PrometheusServer:
    """`prometheus` scraping `targets` (host:port) every `interval_s` as job `job`."""

    def __init__(self, folder: Path, targets: list[str], interval_s: int = 1) -> None:
        self.folder = folder
        self.targets = targets
        self.interval_s = interval_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        targets = ", ".join(f'"{t}"' for t in self.targets)
        return (
            f"global:\n  scrape_interval: {self.interval_s}s\n"
            f"  evaluation_interval: {self.interval_s}s\n"
            f"scrape_configs:\n  - job_name: crackq\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )

    def start(self, timeout_s: float = 60) -> None:
        import requests

        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError(MISSING)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "prometheus.yml").write_text(self.config())
        argv = [binary, f"--config.file={self.folder / 'prometheus.yml'}"]
        argv += [f"--storage.tsdb.path={self.folder / 'data'}"]
        argv += [f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        with open(self.folder / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        if not wait_until(ready, timeout_s, step=0.2):
            raise TimeoutError(f"prometheus on {self.port} was not ready:\n{self.log()}")

    def log(self) -> str:
        path = self.folder / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def api(self, path: str, **params: Any) -> Any:
        """The `data` of a Prometheus HTTP API answer; ValueError with its error otherwise."""
        import requests

        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = r.json()
        if body.get("status") != "success":
            raise ValueError(f"{params.get('query')}: {body.get('error', r.text[:300])}")
        return body["data"]

    def range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        """`expr` evaluated from `start` to `end` (unix seconds) every `step_s`."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step_s)
        return [
            Series(s["metric"], [(float(t), float(v)) for t, v in s["values"]])
            for s in data["result"]
        ]

    def up(self) -> int:
        """How many targets answered their last scrape."""
        return sum(int(float(s["value"][1])) for s in self.api("query", query="up")["result"])

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

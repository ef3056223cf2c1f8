"""The Kubernetes example (ops/k8s/): schemas, commands, settings and probes, checked offline."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.deploy import k8s
from harness.procs import ROOT

pytest.importorskip("kubernetes_validate")


def _by_name(kind: str = "") -> dict[str, dict[str, Any]]:
    """The example's resources by name; those of `kind` (default: all but Services)."""
    return {
        doc["metadata"]["name"]: doc
        for doc in k8s.load()
        if doc["kind"] == kind or (not kind and doc["kind"] != "Service")
    }


def _write(folder: Path, docs: list[dict[str, Any]]) -> Path:
    """The example with `docs` in place of its resources, one file each, and the kustomization."""
    names = []
    for doc in docs:
        name = f"{doc['metadata']['name']}-{doc['kind'].lower()}.yaml"  # unique per resource
        (folder / name).write_text(yaml.safe_dump({k: v for k, v in doc.items() if k != "_file"}))
        names.append(name)
    (folder / k8s.KUSTOMIZATION).write_text(yaml.safe_dump({"resources": names}))
    return folder


def test_the_example_passes_every_check() -> None:
    docs = _by_name()
    assert k8s.check() == []
    kinds = {(d["kind"], name) for name, d in docs.items()}
    assert {("Deployment", "crackq-inference"), ("Deployment", "crackq-training"),
            ("Deployment", "crackq-flower"), ("Job", "crackq-migrate"),
            ("Secret", "crackq-urls")} <= kinds  # fmt: skip
    urls = docs["crackq-urls"]["stringData"]
    assert {"CRACKQ_BROKER_URL", "CRACKQ_DATABASE_URL", "CRACKQ_ARTIFACT_STORE"} <= set(urls)


def test_workers_probe_health_and_readiness_and_ask_for_resources() -> None:
    for name in ("crackq-inference", "crackq-training"):
        (container,) = _by_name()[name]["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]["cpu"]
        mounts = {m["name"] for m in container["volumeMounts"]}
        volumes = _by_name()[name]["spec"]["template"]["spec"]["volumes"]
        assert all("emptyDir" in v for v in volumes if v["name"] in mounts)  # no shared disk
    text = (ROOT / "ops" / "k8s" / "inference.yaml").read_text()
    assert "# nvidia.com/gpu: 1" in text  # the GPU variant, commented


def test_the_k8s_check_catches_each_kind_of_mistake(tmp_path: Path) -> None:
    docs = copy.deepcopy(_by_name())
    inference = docs["crackq-inference"]["spec"]["template"]["spec"]["containers"][0]
    inference["livenessProbe"]["httpGet"]["path"] = "/readyz"  # restarts on a Redis outage
    inference["readinessProbe"]["httpGet"]["path"] = "/ready"
    inference["env"].append({"name": "CRACKQ_GPU", "value": "1"})
    inference["readinessprobe"] = {}  # a typo the schema refuses
    training = docs["crackq-training"]["spec"]["template"]["spec"]["containers"][0]
    training["args"] = ["worker", "--queues", "train"]
    flower = docs["crackq-flower"]["spec"]["template"]["spec"]["containers"][0]
    flower["envFrom"][1]["secretRef"]["name"] = "crackq-secrets"
    del docs["crackq-migrate"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    everything = [*docs.values(), *_by_name("Service").values()]
    problems = "\n".join(k8s.check(_write(tmp_path, everything)))
    assert "livenessProbe should call /healthz" in problems
    assert "/ready is not served by worker" in problems
    assert "CRACKQ_GPU is not a crackq setting" in problems
    assert "readinessprobe" in problems
    assert "invalid choice: 'train'" in problems
    assert "Secret crackq-secrets is not in the example" in problems
    assert "crackq-migrate migrate: no resource requests" in problems


def test_the_deploy_check_command_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness.deploy"], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ops/k8s: 7 resources, 0 problems" in out.stdout

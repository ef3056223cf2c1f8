"""The Kubernetes example (ops/k8s/) checked: schemas, commands, settings, probes, requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.deploy import rules
from harness.procs import ROOT

K8S_DIR = ROOT / "ops" / "k8s"
KUSTOMIZATION = "kustomization.yaml"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def load(folder: Path = K8S_DIR) -> list[dict[str, Any]]:
    """Every resource of the folder's YAML files (the kustomization file aside)."""
    return [
        {**doc, "_file": path.name}
        for path in sorted(folder.glob("*.yaml"))
        if path.name != KUSTOMIZATION
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def check(folder: Path = K8S_DIR) -> list[str]:
    """Every problem of the example, checked as `kubectl apply --validate=strict` and crackq."""
    import kubernetes_validate

    docs = load(folder)
    problems = _kustomization(folder, docs)
    version = kubernetes_validate.latest_version()
    for doc in docs:
        plain = {k: v for k, v in doc.items() if k != "_file"}
        try:
            kubernetes_validate.validate(plain, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['_file']}: {doc.get('kind')}: {exc.message}")
    sources = {
        (doc["kind"], doc["metadata"]["name"]): {
            **doc.get("data", {}),
            **doc.get("stringData", {}),
        }
        for doc in docs
        if doc.get("kind") in ("Secret", "ConfigMap")
    }
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            problems += _workload(doc, sources)
    return problems


def _kustomization(folder: Path, docs: list[dict[str, Any]]) -> list[str]:
    listed = set(yaml.safe_load((folder / KUSTOMIZATION).read_text())["resources"])
    files = {doc["_file"] for doc in docs}
    return [f"{KUSTOMIZATION}: {name} is not listed" for name in sorted(files - listed)] + [
        f"{KUSTOMIZATION}: {name} does not exist" for name in sorted(listed - files)
    ]


def _workload(doc: dict[str, Any], sources: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    template = doc["spec"]["template"]
    selector = doc["spec"].get("selector", {}).get("matchLabels", {})
    if not selector.items() <= template["metadata"].get("labels", {}).items():
        problems.append(f"{doc['_file']}: the selector does not match the pod's labels")
    for container in template["spec"]["containers"]:
        if str(container.get("image", "")).startswith("crackq"):
            where = f"{doc['_file']} {doc['kind']}/{doc['metadata']['name']} {container['name']}"
            problems += _container(where, doc["kind"], container, sources)
    return problems


def _container(
    where: str, kind: str, container: dict[str, Any], sources: dict[tuple[str, str], dict[str, Any]]
) -> list[str]:
    problems: list[str] = []
    if container.get("command") not in (None, ["crackq"]):
        problems.append(f"{where}: command {container['command']} is not the image's `crackq`")
    env: dict[str, Any] = {}
    for ref in container.get("envFrom", []):
        for key, kind_of in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if key in ref:
                name = ref[key]["name"]
                if (kind_of, name) not in sources:
                    problems.append(f"{where}: {kind_of} {name} is not in the example")
                env.update(sources.get((kind_of, name), {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")  # None: from a secret or the downward API
    problems += rules.settings_problems(
        where, {k: None if v is None else str(v) for k, v in env.items()}
    )
    args = container.get("args", [])
    found = rules.command_problems(where, args)
    if found:
        return problems + found
    parsed = rules.parsed(args)
    role = rules.role_of(parsed)
    if "requests" not in container.get("resources", {}):
        problems.append(f"{where}: no resource requests")
    if role == "job":
        return problems
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    wanted = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            if probe_name != "startupProbe":
                problems.append(f"{where}: no {probe_name}")
            continue
        get = probe.get("httpGet")
        if get is None:
            problems.append(f"{where}: {probe_name} is not an httpGet")
            continue
        port = ports.get(get["port"], get["port"])
        if not isinstance(port, int):
            problems.append(f"{where}: {probe_name} names port {port!r}, which is not declared")
            continue
        problems += rules.endpoint_problems(
            f"{where} {probe_name}", role, port, get["path"], env, parsed
        )
        if role == "worker" and probe_name in wanted and get["path"] != wanted[probe_name]:
            problems.append(f"{where}: {probe_name} should call {wanted[probe_name]}")
    return problems

"""Remote-control commands: ask running workers which model version they serve."""

from __future__ import annotations

from typing import Any

from celery.worker.control import inspect_command

from worker import opsserver, runtime


@inspect_command(name="crackq_model")
def crackq_model(state: Any) -> dict[str, Any]:
    """{"version": served model version, or None before this worker loaded one;
    "shadow": the shadow version it also scores with, or None;
    "metrics": the URL of its /metrics, or None without an endpoint}."""
    rt = runtime.current_runtime()
    shadow = rt.shadow.current() if rt is not None and rt.shadow is not None else None
    return {
        "version": rt.classifier().version if rt is not None else None,
        "shadow": shadow.version if shadow is not None else None,
        "metrics": opsserver.url(),
    }

"""Faults against real processes: each injects one, then counts rows (or runs) lost or duplicated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.faults.crashes import kill9_mid_batch, redis_restart
from harness.faults.messages import duplicate_delivery, malformed_and_pickle
from harness.faults.poison import poison_in_batch
from harness.faults.postgres import postgres_refusal
from harness.faults.selfheal import kill9_self_heal
from harness.faults.training import kill9_training

SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "kill9_mid_batch": kill9_mid_batch,
    "kill9_self_heal": kill9_self_heal,
    "redis_restart": redis_restart,
    "redis_restart_sigkill": lambda rig, **kw: redis_restart(rig, kill=True, **kw),
    "postgres_refusal": postgres_refusal,
    "duplicate_delivery": duplicate_delivery,
    "malformed_and_pickle": malformed_and_pickle,
    "poison_in_batch": poison_in_batch,
    "kill9_training": kill9_training,
}

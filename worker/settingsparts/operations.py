"""Settings of operations: worker processes, logging, Flower, the console and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class OperationsSettings(BaseModel):
    """Operations: worker processes, logging, Flower, the console (crackq ui) and metrics."""

    worker_concurrency: int = Field(
        0, ge=0, description="Inference worker threads; 0 = automatic (2)."
    )
    allocator: Literal["auto", "tcmalloc", "jemalloc", "system"] = Field(
        "auto", description="Memory allocator preloaded by `crackq worker`."
    )
    log_level: str = Field("INFO", description="Logging level.")
    flower_port: int = Field(5555, description="Port for `crackq flower`.")
    flower_address: str = Field(
        "127.0.0.1",
        description="Address `crackq flower` listens on; any but loopback needs basic auth.",
    )
    flower_basic_auth: SecretStr | None = Field(
        None, description="`user:password` for Flower's basic auth (passed as FLOWER_BASIC_AUTH)."
    )

    ui_address: str = Field(
        "127.0.0.1",
        description="Address `crackq ui` (the console) listens on; any but loopback needs "
        "CRACKQ_UI_USERS or CRACKQ_UI_USERS_FILE.",
    )
    ui_port: int = Field(8600, ge=1, le=65535, description="Port of `crackq ui`.")
    ui_users: SecretStr | None = Field(
        None,
        description="The console's accounts, `name:role:password` separated by commas; role "
        "viewer (reads), reviewer (+ answers the review queue) or operator (+ promotes and "
        "rolls back models); the password plain or a hash from `crackq ui --hash-password`. "
        "Unset on loopback: no login, the local user is an operator.",
    )
    ui_users_file: Path | None = Field(
        None,
        description="File of console accounts, one `name:role:password` per line (a "
        "Docker/K8s secret); read with CRACKQ_UI_USERS.",
    )
    ui_secret_key: SecretStr | None = Field(
        None,
        description="Key that signs the console's session cookies; unset: a random one per "
        "start (everyone logs in again after a restart).",
    )
    ui_read_role: str = Field(
        "crackq_reporting",
        description="Database role the console's read-only pages switch to (SET ROLE); empty: "
        "read as the connecting user, in read-only transactions.",
    )

    metrics_port: int = Field(
        9808,
        ge=0,
        le=65535,
        description="Port of every worker's /metrics (Prometheus), /healthz and /readyz; "
        "the next free one of the following 15 when taken; 0 = no endpoint.",
    )
    metrics_address: str = Field(
        "127.0.0.1",
        description="Address the metrics and health endpoint listens on (0.0.0.0 in "
        "containers, for Prometheus and healthchecks from outside).",
    )
    metrics_db_s: float = Field(
        10.0,
        gt=0,
        description="Scrapes read row, dead-letter and run counts from PostgreSQL at most "
        "this often (seconds); queue depth is read from Redis on every scrape.",
    )

"""Settings of the services crackq talks to: Redis, PostgreSQL and the embedded ones."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/crackq"


class ServiceSettings(BaseModel):
    """Broker, database, embedded servers and the local data folder."""

    broker_url: SecretStr = Field(
        SecretStr(DEFAULT_BROKER_URL),
        description="Redis broker URL (redis://, rediss:// for TLS; password in the URL).",
    )
    database_url: SecretStr = Field(
        SecretStr(DEFAULT_DATABASE_URL),
        description="SQLAlchemy URL of the PostgreSQL database holding results.",
    )
    database_url_file: Path | None = Field(
        None, description="File holding the database URL (Docker/K8s secret); wins if set."
    )
    broker_url_file: Path | None = Field(
        None, description="File holding the broker URL (Docker/K8s secret); wins if set."
    )
    embedded: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Start embedded Redis/PostgreSQL for the demo when none is configured "
        "or answering: auto, always (forced, e.g. in tests) or never.",
    )
    data_dir: Path = Field(
        Path(".crackq"), description="Local folder for embedded servers, runs and checkpoints."
    )
    visibility_timeout_s: int = Field(
        3600,
        description="Redis visibility timeout: an unacked message is redelivered after this "
        "long if its worker died. Must exceed the longest inference batch.",
    )
    event_flush_ms: int = Field(
        50,
        ge=0,
        le=5000,
        description="Task events (Flower) are published at most this often, a batch's "
        "events together (worker.eventflush); 0 = Celery's flush on every event-loop turn.",
    )
    batch_receive: bool = Field(
        True,
        description="After each BRPOP, take the messages waiting on redis:// in one Redis "
        "script that also records them as unacknowledged (worker.transport); false = kombu's "
        "round trips per message.",
    )

    def broker(self) -> str:
        """The broker URL, read from its secret file when one is configured."""
        if self.broker_url_file is not None:
            return self.broker_url_file.read_text().strip()
        return self.broker_url.get_secret_value()

    def database(self) -> str:
        """The database URL, read from its secret file when one is configured."""
        if self.database_url_file is not None:
            return self.database_url_file.read_text().strip()
        return self.database_url.get_secret_value()

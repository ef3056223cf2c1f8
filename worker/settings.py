"""The one Settings class: the only code in crackq that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.settingsparts.artifacts import ArtifactSettings
from worker.settingsparts.gates import GateSettings
from worker.settingsparts.maps import MapSettings
from worker.settingsparts.operations import OperationsSettings
from worker.settingsparts.rescore import RescoreSettings
from worker.settingsparts.review import ReviewSettings
from worker.settingsparts.selfheal import SelfHealSettings
from worker.settingsparts.services import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL, ServiceSettings
from worker.settingsparts.serving import ServingSettings
from worker.settingsparts.sources import SourceSettings
from worker.settingsparts.training import TrainingSettings

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_DATABASE_URL",
    "Settings",
    "get_settings",
]


# Pydantic orders fields by the reversed MRO (the last group listed comes first), so the
# groups are listed bottom-up: model_fields and the JSON schema start with the services.
class Settings(
    OperationsSettings,
    RescoreSettings,
    SelfHealSettings,
    ReviewSettings,
    GateSettings,
    TrainingSettings,
    ArtifactSettings,
    SourceSettings,
    MapSettings,
    ServingSettings,
    ServiceSettings,
    BaseSettings,
):
    """Every setting crackq has; each maps to an environment variable `CRACKQ_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="CRACKQ_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        secrets_dir=None,
    )

    def models_cache(self) -> Path:
        """The model cache folder (CRACKQ_MODEL_CACHE_DIR, else CRACKQ_DATA_DIR/cache/models)."""
        return self.model_cache_dir or self.data_dir / "cache" / "models"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

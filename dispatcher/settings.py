"""Configuration, read once from the environment (prefix `DISPATCHER_`)."""

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaigns.policy import Policy


class BindSettings(BaseModel):
    """One SMPP bind to the operator's SMSC."""

    name: str = "smsc1"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "dispatcher"
    password: SecretStr = SecretStr("secret")
    system_type: str = ""
    source_addr: str = "GiaLai"
    source_addr_ton: int = 5  # alphanumeric brandname
    source_addr_npi: int = 0
    rate: float = Field(default=100.0, ge=0, description="submits/s; 0 = unlimited")
    window: int = Field(default=100, ge=1, le=1000)
    enquire_link_interval: float = 30.0


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", env_nested_delimiter="__")

    var_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    binds: list[BindSettings] = Field(default_factory=lambda: [BindSettings()])
    batch_size: int = Field(default=1000, ge=1, le=1000)
    receipt_timeout: float = Field(default=3600.0, gt=0, description="seconds until `unknown`")
    job_timeout: int = Field(
        default=3600,
        ge=5,
        description="seconds a send job may run; a dead worker's jobs rerun after it",
    )
    requeue_after: float = Field(
        default=60,
        gt=0,
        description="seconds without a claim before a campaign's batches are queued again",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    queue_name: str = "dispatcher"
    max_parts: int = Field(default=6, ge=1, le=255, description="SMS parts one message may take")
    exercise_marker: str = "[DIỄN TẬP] "
    default_validity_hours: float = Field(default=24, gt=0)

    @property
    def policy(self) -> Policy:
        """The content rules campaigns are held to."""
        return Policy(
            max_parts=self.max_parts,
            exercise_marker=self.exercise_marker,
            default_validity=timedelta(hours=self.default_validity_hours),
        )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under `var_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'dispatcher.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()

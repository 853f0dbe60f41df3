"""Configuration, read once from the environment (prefix `DISPATCHER_`)."""

from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaigns.policy import Policy
from dispatcher.sending.answers import Action
from dispatcher.sending.smsc_ids import IdBase


class OnConnectionLoss(StrEnum):
    """What becomes of submit_sm written but not answered when a link drops or times out."""

    UNKNOWN = "unknown"  # never written again: the message ends `unknown`, counted in doubt
    RESEND = "resend"  # written again on the next link, marked in doubt (it may arrive twice)


class ReceiptsPer(StrEnum):
    """What one delivery receipt reports on, for a message sent in several parts."""

    PART = "part"  # one receipt per submit_sm (SMPP's way): the message ends with its last part
    MESSAGE = "message"  # one receipt for the whole message: it ends every part


class AccountSettings(BaseModel):
    """One SMSC account: where to bind, the contract (rate, sessions) and how its binds behave."""

    name: str = "smsc1"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "dispatcher"
    password: SecretStr = SecretStr("secret")
    system_type: str = ""
    source_addr: str = "GiaLai"
    source_addr_ton: int = 5  # alphanumeric brandname
    source_addr_npi: int = 0
    rate: float = Field(
        default=100.0, ge=0, description="contracted submits/s, all sessions together; 0 = none"
    )
    max_sessions: int = Field(default=1, ge=1, description="binds the SMSC allows at once")
    sessions_per_worker: int = Field(default=1, ge=1, description="binds one worker may hold")
    window: int = Field(default=100, ge=1, le=1000)
    response_timeout: float = Field(default=30.0, gt=0, description="seconds for a submit_sm_resp")
    enquire_link_interval: float = Field(default=30.0, gt=0)
    enquire_link_timeout: float = Field(default=10.0, gt=0)
    reconnect_max: float = Field(default=60.0, gt=0, description="longest wait between binds")
    on_connection_loss: OnConnectionLoss = OnConnectionLoss.UNKNOWN
    answers: dict[str, Action] = Field(
        default_factory=dict, description='command_status → action overrides, e.g. {"0x45": …}'
    )
    max_attempts: int = Field(default=5, ge=1, description="tries of a temporary error")
    retry_for: float = Field(default=600.0, gt=0, description="seconds a message may be retried")
    retry_backoff: float = Field(default=1.0, gt=0, description="first retry delay in seconds")
    submit_ids: IdBase = Field(
        default=IdBase.AUTO, description="how submit_sm_resp writes ids: dec, hex, text, auto"
    )
    receipt_ids: IdBase = Field(
        default=IdBase.AUTO, description="how delivery receipts write ids: dec, hex, text, auto"
    )
    receipts_per: ReceiptsPer = ReceiptsPer.PART


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", env_nested_delimiter="__")

    var_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    binds: list[AccountSettings] = Field(default_factory=lambda: [AccountSettings()])
    batch_size: int = Field(default=1000, ge=1, le=1000)
    receipt_timeout: float = Field(default=3600.0, gt=0, description="seconds until `unknown`")
    unmatched_receipt_ttl: float = Field(
        default=3600.0, gt=0, description="seconds a receipt matching no message is kept trying"
    )
    job_timeout: int = Field(
        default=3600,
        ge=5,
        description="seconds an expansion job may run",
    )
    requeue_after: float = Field(
        default=60,
        gt=0,
        description="seconds an approved campaign may wait for its expansion job",
    )
    heartbeat_interval: float = Field(default=2.0, gt=0, description="seconds between beats")
    worker_dead_after: float = Field(
        default=10.0, gt=0, description="seconds without a heartbeat before a worker is dead"
    )
    drain_timeout: float = Field(
        default=10.0, ge=0, description="seconds a stopping worker waits for answers"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_request_bytes: int = Field(
        default=1 << 20, ge=1024, description="largest request body, uploads aside"
    )
    max_upload_bytes: int = Field(
        default=32 << 20, ge=1024, description="largest recipient-list upload (multipart)"
    )
    max_upload_rows: int = Field(
        default=1_000_000, ge=1, description="rows a recipient-list upload may hold"
    )
    body_read_timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait for each chunk of a request body"
    )
    api_keep_alive_timeout: int = Field(
        default=5, ge=1, description="seconds an idle HTTP connection is kept open"
    )
    headers_timeout: float = Field(
        default=10.0, gt=0, description="seconds a request's line and headers may take to arrive"
    )
    api_max_header_bytes: int = Field(
        default=16384, ge=1024, description="largest request line and headers together"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser"
    )
    queue_name: str = "dispatcher"
    max_parts: int = Field(default=6, ge=1, le=255, description="SMS parts one message may take")
    exercise_marker: str = "[DIỄN TẬP] "
    default_validity_hours: float = Field(default=24, gt=0)
    metrics_enabled: bool = Field(default=True, description="record latencies and publish figures")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="a worker's /metrics port; unset: none"
    )
    metrics_host: str = Field(default="127.0.0.1", description="where a worker's /metrics listens")
    metrics_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="who may read /metrics without an operator token (CIDR)",
    )
    ops_session_hours: float = Field(default=8, gt=0, description="operator page sign-in lifetime")
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="failed authentications per client address and minute"
    )

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

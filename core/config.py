"""Settings: the only place that reads the environment."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SQL_SCHEMES = ("sqlite", "postgresql", "postgres")
MONGO_SCHEMES = ("mongodb", "mongodb+srv")


class ConfigError(Exception):
    """Configuration that cannot work; reported as one line at start-up."""


def database_kind(url: str) -> Literal["sqlite", "postgresql", "mongodb"]:
    """Classify a DATABASE_URL by scheme, accepting driver suffixes such as `+asyncpg`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.startswith("sqlite"):
        return "sqlite"
    if scheme.startswith(("postgresql", "postgres")):
        return "postgresql"
    if scheme in MONGO_SCHEMES:
        return "mongodb"
    raise ValueError(
        f"unsupported DATABASE_URL scheme {scheme or url!r}: "
        "use sqlite:///path, postgresql://… or mongodb://…"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./data/ticketboss.db"
    redis_url: str | None = None
    redis_timeout_seconds: float | None = Field(default=None, gt=0, le=60)
    database_pool_size: int = Field(default=5, gt=0, le=100)
    reserve_batch_max: int = Field(default=64, ge=1, le=1000)
    reserve_one_statement: bool = True
    """PostgreSQL: a booking without a buyer limit that is not batched is one statement (a
    data-modifying CTE); false sends it through the short transaction (a benchmark's A/B)."""

    jwt_secret: str | None = None
    """Unset in development: a random one kept in the data directory (core/security.py)."""
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_private_key_file: str | None = None
    jwt_public_key_files: str = Field(
        default="", description="comma-separated kid=path pairs of extra accepted public keys"
    )
    jwt_kid: str = "k1"
    jwt_previous_secrets: str = Field(
        default="", description="comma-separated kid=secret pairs still accepted (HS256 rotation)"
    )
    jwt_issuer: str = "ticketboss"
    jwt_audience: str = "ticketboss-api"
    access_token_ttl_seconds: int = Field(default=900, gt=0)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)

    hold_ttl_seconds: int = Field(default=600, gt=0)
    max_pending_per_user: int = Field(default=10, gt=0, le=1000)
    waitlist_offer_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    change_retention_days: float = Field(default=90.0, gt=0)
    expire_sweep_seconds: float = Field(default=15.0, gt=0)
    availability_cache_seconds: int = Field(default=3, ge=0)
    queue_tick_seconds: float = Field(
        default=0.1, gt=0, le=5, description="how often each worker offers an admission step"
    )
    queue_lease_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how long a waiting room's admitter holds its lease without renewing it",
    )
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    idempotency_lease_seconds: int = Field(default=10, ge=1, le=3600)

    rate_limit_enabled: bool = True
    rate_limit_anonymous: str = "120/minute"
    rate_limit_authenticated: str = "600/minute"
    rate_limit_login_ip: str = "20/minute"
    rate_limit_login_account: str = "50/minute"
    rate_limit_login_account_ip: str = "5/minute"

    ticketboss_anonymous_partners: bool = False
    ticketboss_event_id: str = "node-meetup-2025"
    ticketboss_event_name: str = "Node.js Meet-up"
    ticketboss_total_seats: int = Field(default=500, gt=0)
    ticketboss_event_starts_at: datetime = datetime(2030, 6, 1, 18, 0, tzinfo=UTC)

    # The tiered ticket-booking contract (/api/tickets): one show in three priced tiers,
    # created on first start (later changes go through PATCH /api/v1/events/{id}).
    ticketboss_anonymous_tiers: bool = False
    ticketboss_tiered_event_id: str = "tiered-show"
    ticketboss_tiered_event_name: str = "Tiered Show"
    ticketboss_tiered_event_starts_at: datetime = datetime(2030, 6, 1, 20, 0, tzinfo=UTC)
    ticketboss_tiered_vip_capacity: int = Field(default=100, gt=0)
    ticketboss_tiered_vip_price_cents: int = Field(default=10_000, ge=0)
    ticketboss_tiered_front_row_capacity: int = Field(default=200, gt=0)
    ticketboss_tiered_front_row_price_cents: int = Field(default=5_000, ge=0)
    ticketboss_tiered_ga_capacity: int = Field(default=1_000, gt=0)
    ticketboss_tiered_ga_price_cents: int = Field(default=1_000, ge=0)

    # Webhooks: outbound requests to URLs our callers chose (see modules/webhooks/urls.py).
    webhook_allow_private: bool = False
    """Allow http:// and private, loopback or link-local addresses (development and tests)."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=24 * 3600.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)

    # Email (modules/notifications): SMTP_URL, or the embedded mailbox in MAIL_DIR.
    smtp_url: SecretStr | None = None
    """smtp://user:pass@host:587 (STARTTLS when offered) or smtps://user:pass@host:465."""
    smtp_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    smtp_ca_file: str | None = None
    """A PEM bundle SMTP's TLS certificate may chain to instead of the system's (a private relay)."""
    mail_dir: str = "./data/mail"
    mail_from: str = "TicketBoss <no-reply@ticketboss.localhost>"
    mail_retry_base_seconds: float = Field(default=10.0, gt=0)
    mail_retry_max_seconds: float = Field(default=3600.0, gt=0)
    mail_retry_window_seconds: float = Field(default=3 * 24 * 3600.0, gt=0)
    mail_poll_seconds: float = Field(default=1.0, gt=0)
    mail_busy_per_second: float = Field(default=5.0, ge=1)
    """While its worker is answering requests, a sender sends at most this many mails a second
    (rendering a confirmation costs about as much CPU as the booking): sales come first."""
    public_url: str = "http://127.0.0.1:8000"
    """Where people reach the web front: the base of links in messages (password reset)."""
    reset_token_ttl_seconds: int = Field(default=30 * 60, gt=0)
    email_code_ttl_seconds: int = Field(default=15 * 60, gt=0)
    email_code_max_attempts: int = Field(default=5, ge=1, le=100)
    require_verified_email: bool = False
    """Accounts book and order only once their address is verified (403 EMAIL_NOT_VERIFIED)."""

    prometheus_multiproc_dir: str | None = None
    metrics_token: str | None = None
    """Bearer token for /metrics; unset: /metrics answers loopback clients only."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_header_bytes: int = Field(default=16_384, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Load shedding, per worker, in force with or without rate limits.
    max_in_flight: int = Field(default=1024, ge=1)
    overload_retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    # Live streams (SSE), resource limits in force with or without rate limits: open streams
    # per IP and per account (429), per worker process (503); a stream with no update for
    # stream_idle_seconds is closed; a comment every stream_heartbeat_seconds.
    stream_max_per_ip: int = Field(default=16, ge=1)
    stream_max_per_account: int = Field(default=8, ge=1)
    stream_max_per_worker: int = Field(default=5000, ge=1)
    stream_idle_seconds: float = Field(default=300.0, gt=0)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    stream_retry_after_seconds: int = Field(default=5, ge=1, le=3600)
    # A request body must have arrived this long after its head (slow-body attacks; serve only).
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    worker_healthcheck_seconds: int = Field(default=30, ge=1, le=600)
    # A worker that has not answered its first ping need only be alive, for this long.
    worker_startup_seconds: int = Field(default=300, ge=1, le=3600)
    # A connection closed while its request is still arriving (an early 413, 431 or 503)
    # reads and drops the rest for this long, up to this much, so the client reads the answer.
    linger_seconds: float = Field(default=5.0, ge=0, le=120)
    linger_max_bytes: int = Field(default=64 * 1_048_576, ge=0)
    cors_origins: str = ""
    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = None

    @field_validator(
        "redis_url",
        "redis_timeout_seconds",
        "jwt_secret",
        "jwt_private_key_file",
        "log_format",
        "prometheus_multiproc_dir",
        "metrics_token",
        "smtp_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        database_kind(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if value is not None and not value.startswith(schemes):
            raise ValueError(
                "REDIS_URL must start with redis://, rediss://, or redis+cluster:// "
                "(rediss+cluster://) for a Redis Cluster"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("smtp://", "smtps://")):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        return value

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.environment == "production" and self.jwt_algorithm == "HS256":
            if self.jwt_secret is None or len(self.jwt_secret.encode()) < 32:
                raise ValueError(
                    "JWT_SECRET must be set to a random value of at least 32 bytes in production"
                )
        if self.environment == "production" and self.webhook_allow_private:
            raise ValueError(
                "WEBHOOK_ALLOW_PRIVATE lets webhooks reach internal addresses: "
                "it is for development and tests only, never production"
            )
        if self.jwt_algorithm != "HS256" and not self.jwt_private_key_file:
            raise ValueError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PRIVATE_KEY_FILE")
        return self

    @cached_property
    def database_kind(self) -> Literal["sqlite", "postgresql", "mongodb"]:
        return database_kind(self.database_url)

    @property
    def data_dir(self) -> Path:
        """Where the embedded default keeps its files: beside the SQLite database, else ./data."""
        if self.database_kind == "sqlite" and ":///" in self.database_url:
            database = self.database_url.split(":///", 1)[1].split("?", 1)[0]
            if database and database != ":memory:" and not database.startswith("file:"):
                return Path(database).parent
        return Path("data")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def json_logs(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return not sys.stderr.isatty()


def load_settings() -> Settings:
    """Build settings from the environment, turning validation errors into one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None

"""Service configuration: one home, read from ASKTELL_* environment variables or CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.store.urls import is_sqlite

DEFAULT_DATABASE_URL = "sqlite:///./asktell.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASKTELL_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. sqlite:///file.db (embedded default) or postgresql://user@host/db.",
    )
    pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL connections per pool of an API process: the general pool and the hot path's "
        "prepared-statement pool each open up to this many (5, 10 and 20 measured alike on two cores).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    migrate_on_start: bool = Field(default=True, description="Run `db upgrade` when the server starts.")
    embedded_worker: Literal["auto", "on", "off"] = Field(
        default="auto", description="Run an engine worker inside the API process; auto: on for SQLite."
    )
    worker_device: str = Field(default="cpu", description="Device of the embedded worker: cpu, cuda or auto.")
    admin_token: SecretStr | None = Field(
        default=None, description="Installed as an admin token of the default namespace at start (bootstrap)."
    )
    insecure: bool = Field(default=False, description="Serve a non-loopback address without authentication.")
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a replica trusts a token check (revocation delay elsewhere)."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed; none by default.")
    stale_sweep_seconds: float = Field(
        default=30.0, gt=0, description="How often active trials are checked against their study's stale_after."
    )

    @property
    def runs_embedded_worker(self) -> bool:
        if self.embedded_worker == "auto":
            return is_sqlite(self.database_url)
        return self.embedded_worker == "on"
